import Foundation
import Logging
import SDSAgentCore

extension CAServer {
  /// Where `--crl-listen` serves: the listen address and `--crl-url`'s path; checked before
  /// anything else is made, since the listener needs the URL.
  static func crlListener(
    _ configuration: CAServerConfiguration
  ) throws(ConfigurationError) -> (host: String, port: Int, path: String)? {
    guard let listen = configuration.crlListen else { return nil }
    guard let url = configuration.crlURL else {
      throw ConfigurationError(
        key: "crl-listen", value: "\(listen.host):\(listen.port)",
        allowed: "HOST:PORT together with --crl-url, the URL agents fetch the CRL from")
    }
    return (listen.host, listen.port, URL(string: url.url)?.path(percentEncoded: true) ?? "/")
  }

  /// The HTTP server of `--crl-listen`, serving what the revocation service signed last.
  static func crlServer(
    _ listener: (host: String, port: Int, path: String)?, ca: EmbeddedCA, host: CAServerRevocationHost,
    logger: Logger
  ) -> CRLDistributionServer? {
    listener.map { listener in
      CRLDistributionServer(
        host: listener.host, port: listener.port, path: listener.path,
        lists: {
          let all = host.servedRevocationLists
          let signing = ca.roots.signing.certificate
          return (all, all.first { $0.isSigned(by: signing) })
        }, logger: logger)
    }
  }
}
