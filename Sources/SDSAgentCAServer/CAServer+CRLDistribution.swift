import Foundation
import Logging
import SDSAgentCore

extension CAServer {
  /// The HTTP server of `--crl-listen`, serving at `--crl-url`'s path what the revocation
  /// service signed last.
  static func crlServer(
    _ configuration: CAServerConfiguration, ca: EmbeddedCA, host: CAServerRevocationHost, logger: Logger
  ) throws(ConfigurationError) -> CRLDistributionServer? {
    guard let listen = configuration.crlListen else { return nil }
    guard let url = configuration.crlURL else {
      throw ConfigurationError(
        key: "crl-listen", value: "\(listen.host):\(listen.port)",
        allowed: "HOST:PORT together with --crl-url, the URL agents fetch the CRL from")
    }
    let path = URL(string: url.url)?.path(percentEncoded: true) ?? "/"
    return CRLDistributionServer(
      host: listen.host, port: listen.port, path: path,
      lists: {
        let all = host.servedRevocationLists
        let signing = ca.roots.signing.certificate
        return (all, all.first { $0.isSigned(by: signing) })
      }, logger: logger)
  }
}
