import SDSAgentCore

/// Where and how to reach an Istio-compatible CA (istiod, cert-manager's istio-csr, or
/// `sds-agent ca serve`).
package struct IstioCAConfiguration: Sendable, Equatable {
  /// The first address; `addresses` holds it and the others.
  package let host: String
  package let port: Int
  /// Every `--ca-address` in the order given, the first being `host:port`: replicas of one CA
  /// that the client spreads its calls over and fails over between.
  package var addresses: [CAAddress]
  /// PEM roots that verify the CA's TLS certificate; `nil` only with `insecurePlaintext`.
  package let rootsFile: String?
  /// The name expected in the CA's certificate and sent as SNI, like Istio's `ISTIOD_SAN`.
  package let serverName: String?
  package let insecurePlaintext: Bool
  /// A JWT, re-read for every request because projected tokens rotate.
  package let tokenFile: String?
  package let clusterID: String
  package let extraHeaders: [String: String]
  package let requestTimeout: Duration
  /// The CA's CRLs as a file (`--ca-crl`), watched and followed.
  package var crlFile: String?
  /// The longest time between two fetches of the CRL distribution point.
  package var crlRefresh: Duration = .seconds(60)

  package init(
    host: String,
    port: Int,
    rootsFile: String?,
    serverName: String? = nil,
    insecurePlaintext: Bool = false,
    tokenFile: String? = nil,
    clusterID: String = "Kubernetes",
    extraHeaders: [String: String] = [:],
    requestTimeout: Duration = .seconds(10)
  ) throws(ConfigurationError) {
    if rootsFile == nil {
      guard port == 15010 else {
        throw ConfigurationError(
          key: "ca-root",
          value: "",
          allowed: "a PEM file with the roots of the CA's TLS certificate (required unless the address ends in :15010)"
        )
      }
      guard insecurePlaintext else {
        throw ConfigurationError(
          key: "ca-insecure-plaintext",
          value: "false",
          allowed:
            "true to talk to \(host):15010 without TLS (Istio's plaintext port); otherwise use :15012 with --ca-root"
        )
      }
    }
    self.host = host
    self.port = port
    self.addresses = [CAAddress(host: host, port: port)]
    self.rootsFile = rootsFile
    self.serverName = serverName
    self.insecurePlaintext = insecurePlaintext && rootsFile == nil
    self.tokenFile = tokenFile
    self.clusterID = clusterID
    self.extraHeaders = extraHeaders
    self.requestTimeout = requestTimeout
  }

  /// Parses `HOST:PORT` (or `[IPv6]:PORT`).
  package static func parseAddress(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (1...65535).contains(port)
    else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { return nil }
    return (host, port)
  }
}
