import Logging

/// Everything `sds-agent run` needs, validated. Built from flags and environment by the
/// executable; built directly by tests.
public struct AgentConfiguration: Sendable {
  /// Where the signing CA comes from.
  public enum CASource: Sendable, Equatable {
    /// A root generated on first start and kept in the state directory.
    case generated
    /// An operator's CA certificate, key and chain (intermediates and root) in PEM files.
    case files(certificate: String, key: String, chain: String?)
  }

  public var socketPath: String
  /// Permission bits of the socket file (e.g. `0o660`).
  public var socketMode: UInt32
  public var stateDirectory: String
  public var trustDomain: String
  public var identity: SPIFFEID
  public var certificateTTL: Duration
  public var keyType: WorkloadKeyType
  public var rotation: RotationSchedule
  public var caSource: CASource
  /// Fetch mode: certificates come from this Istio-compatible CA instead of the local CA.
  public var istioCA: IstioCAConfiguration?
  public var logLevel: Logger.Level
  public var logFormat: LogFormat
  /// Where the admin endpoint listens (loopback TCP or a Unix socket); `nil` turns it off.
  public var admin: AdminAddress?
  /// Who callers are: the agent's identity for all, or each workload its own.
  public var nodeAgent: NodeAgentConfiguration

  public enum LogFormat: String, Sendable, CaseIterable {
    case plain
    case json
  }

  /// The admin endpoint's address: only loopback or a Unix socket, never a public interface.
  public enum AdminAddress: Sendable, Equatable, CustomStringConvertible {
    case loopback(host: String, port: Int)
    case unixSocket(path: String)

    public init?(_ text: String) {
      if text.hasPrefix("unix:") {
        let path = String(text.dropFirst(5))
        guard path.hasPrefix("/") else { return nil }
        self = .unixSocket(path: path)
        return
      }
      guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (0...65535).contains(port)
      else { return nil }
      var host = String(text[..<colon])
      if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard host == "127.0.0.1" || host == "::1" || host == "localhost" else { return nil }
      self = .loopback(host: host == "localhost" ? "127.0.0.1" : host, port: port)
    }

    public var description: String {
      switch self {
      case .loopback(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
      case .unixSocket(let path): return "unix:\(path)"
      }
    }
  }

  public init(
    socketPath: String,
    socketMode: UInt32 = 0o660,
    stateDirectory: String,
    trustDomain: String = "cluster.local",
    identity: SPIFFEID? = nil,
    certificateTTL: Duration = .seconds(86400),
    keyType: WorkloadKeyType = .ecdsaP256,
    rotation: RotationSchedule = RotationSchedule(),
    caSource: CASource = .generated,
    istioCA: IstioCAConfiguration? = nil,
    logLevel: Logger.Level = .info,
    logFormat: LogFormat = .plain,
    admin: AdminAddress? = nil,
    nodeAgent: NodeAgentConfiguration = NodeAgentConfiguration()
  ) throws(ConfigurationError) {
    guard certificateTTL >= .seconds(2) else {
      throw ConfigurationError(key: "cert-ttl", value: DurationParser.format(certificateTTL), allowed: "at least 2s")
    }
    guard socketMode & ~0o777 == 0 else {
      throw ConfigurationError(
        key: "socket-mode", value: String(socketMode, radix: 8), allowed: "octal permission bits such as 0660")
    }
    let defaultIdentity: SPIFFEID
    do {
      defaultIdentity = try SPIFFEID(trustDomain: trustDomain, namespace: "default", serviceAccount: "default")
    } catch {
      throw ConfigurationError(key: "trust-domain", value: trustDomain, allowed: error.reason)
    }
    let identity = identity ?? defaultIdentity
    guard identity.trustDomain == trustDomain else {
      throw ConfigurationError(
        key: "identity",
        value: identity.description,
        allowed: "a SPIFFE ID in the trust domain \"\(trustDomain)\""
      )
    }
    try nodeAgent.validate(remoteCA: istioCA != nil)
    if let foreign = nodeAgent.rules.first(where: { $0.identity.trustDomain != trustDomain }) {
      throw ConfigurationError(
        key: "workload", value: foreign.description, allowed: "a SPIFFE ID in the trust domain \"\(trustDomain)\"")
    }
    self.nodeAgent = nodeAgent
    self.socketPath = socketPath
    self.socketMode = socketMode
    self.stateDirectory = stateDirectory
    self.trustDomain = trustDomain
    self.identity = identity
    self.certificateTTL = certificateTTL
    self.keyType = keyType
    self.rotation = rotation
    self.caSource = caSource
    self.istioCA = istioCA
    self.logLevel = logLevel
    self.logFormat = logFormat
    self.admin = admin
  }
}

/// A configuration value that cannot be used: names the key, the value and what is allowed.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
  public let key: String
  public let value: String
  public let allowed: String

  public init(key: String, value: String, allowed: String) {
    self.key = key
    self.value = value
    self.allowed = allowed
  }

  public var description: String { "invalid \(self.key) \"\(self.value)\": expected \(self.allowed)" }
}
