import Logging
import SDSAgentCore

/// Everything `sds-agent run` needs. Immutable, and valid by construction: `init` refuses a
/// combination the agent could not run with. Built from the settings by `ConfigurationLoader`;
/// tests use `AgentConfigurationBuilder`.
package struct AgentConfiguration: Sendable {
  /// Where the signing CA comes from.
  package enum CASource: Sendable, Equatable {
    /// A root generated on first start and kept in the state directory.
    case generated
    /// An operator's CA certificate, key and chain (intermediates and root) in PEM files.
    case files(certificate: String, key: String, chain: String?)
  }

  package let socketPath: String
  /// Permission bits of the socket file (e.g. `0o660`).
  package let socketMode: UInt32
  package let stateDirectory: String
  package let trustDomain: String
  package let identity: SPIFFEID
  package let certificateTTL: Duration
  package let keyType: WorkloadKeyType
  package let rotation: RotationSchedule
  /// How long both roots are trusted in a root rotation of the embedded CA before the switch.
  package let rootOverlap: Duration
  /// How long the embedded CA's revocation lists are valid.
  package let crlValidity: Duration
  /// Other trust domains' bundles, served as `spiffe://<trust-domain>` and in `ALL`.
  package let federatedBundles: [FederatedBundleSource]
  /// Whether trust-domain bundles go to Envoy's SPIFFE certificate validator.
  package let spiffeValidator: Bool
  /// TLS server certificates minted on demand per SNI, if any names are allowed.
  package let onDemand: OnDemandSettings?
  /// Secrets the operator names, read from files.
  package let fileSecrets: [FileSecretSource]
  /// Where `file-cert:` and `file-root:` names may point.
  package let fileSecretDirectories: [String]
  /// In node-agent mode, who may have `file-cert:` and `file-root:` names under which directory.
  package let fileSecretCallers: [FileSecretCallers]
  package let caSource: CASource
  /// Fetch mode: certificates come from this Istio-compatible CA instead of the local CA.
  package let istioCA: IstioCAConfiguration?
  package let logLevel: Logger.Level
  package let logFormat: LogFormat
  /// Where the admin endpoint listens (loopback TCP or a Unix socket); `nil` turns it off.
  package let admin: AdminAddress?
  /// Who callers are: the agent's identity for all, or each workload its own.
  package let nodeAgent: NodeAgentConfiguration
  /// Where the SPIFFE Workload API is served.
  package let workloadAPI: WorkloadAPIConfiguration
  /// The operator root's CRL, when the operator's CA signs through an intermediate.
  package var caRootCRL: String?
  /// Whether an operator intermediate's own revocation list is served.
  package var intermediateCRL = true
  /// Where Istio's credential sockets are served (`socket` and `files-socket`), if anywhere.
  package var istioCredentialSockets: String?
  /// Session ticket keys derived from seeds (`session-ticket-keys`).
  package var sessionTicketKeys: [SessionTicketKeySource] = []

  /// The rule for `file-cert:` and `file-root:` names.
  package var onTheFlyFiles: OnTheFlyFilePolicy {
    OnTheFlyFilePolicy(
      directories: self.fileSecretDirectories, callers: self.fileSecretCallers,
      checksCallers: self.nodeAgent.identification != .agent)
  }

  /// What secrets from files may never be.
  package var keyMaterial: AgentKeyMaterial {
    AgentKeyMaterial(stateDirectory: self.stateDirectory, caKey: self.caSource.files?.key)
  }

  package enum LogFormat: String, Sendable, CaseIterable {
    case plain
    case json
  }

  /// The admin endpoint's address: only loopback or a Unix socket, never a public interface.
  package enum AdminAddress: Sendable, Equatable, CustomStringConvertible {
    case loopback(host: String, port: Int)
    case unixSocket(path: String)

    package init?(_ text: String) {
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

    package var description: String {
      switch self {
      case .loopback(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
      case .unixSocket(let path): return "unix:\(path)"
      }
    }
  }

  package init(
    socketPath: String,
    socketMode: UInt32 = 0o660,
    stateDirectory: String,
    trustDomain: String = "cluster.local",
    identity: SPIFFEID? = nil,
    certificateTTL: Duration = .seconds(86400),
    keyType: WorkloadKeyType = .ecdsaP256,
    rotation: RotationSchedule = RotationSchedule(),
    rootOverlap: Duration = .seconds(3600),
    crlValidity: Duration = .seconds(4 * 3600),
    federatedBundles: [FederatedBundleSource] = [],
    spiffeValidator: Bool = true,
    onDemand: OnDemandSettings? = nil,
    fileSecrets: [FileSecretSource] = [],
    fileSecretDirectories: [String] = [],
    fileSecretCallers: [FileSecretCallers] = [],
    caSource: CASource = .generated,
    istioCA: IstioCAConfiguration? = nil,
    logLevel: Logger.Level = .info,
    logFormat: LogFormat = .plain,
    admin: AdminAddress? = nil,
    nodeAgent: NodeAgentConfiguration = NodeAgentConfiguration(),
    workloadAPI: WorkloadAPIConfiguration = WorkloadAPIConfiguration()
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
    var federated: Set<TrustDomainName> = []
    for source in federatedBundles {
      guard source.trustDomain.name != trustDomain else {
        throw ConfigurationError(
          key: "trust-bundle", value: source.description,
          allowed: "another trust domain's bundle; the agent's own (\(trustDomain)) comes from its CA")
      }
      guard federated.insert(source.trustDomain).inserted else {
        throw ConfigurationError(
          key: "trust-bundle", value: source.description, allowed: "one file per trust domain; it is named twice")
      }
    }
    if onDemand != nil, istioCA != nil {
      throw ConfigurationError(
        key: "on-demand-names", value: onDemand!.patterns.map(\.description).joined(separator: ","),
        allowed: "on-demand certificates with the embedded CA (ca: local); an Istio CA signs only SPIFFE identities")
    }
    var secretNames: Set<String> = []
    for source in fileSecrets where !secretNames.insert(source.name).inserted {
      throw ConfigurationError(key: "secret", value: source.name, allowed: "one secret per name; it is named twice")
    }
    for rule in fileSecretCallers
    where !fileSecretDirectories.contains(where: {
      rule.directory == $0 || OnTheFlyFilePolicy.contains($0, rule.directory)
    }) {
      throw ConfigurationError(
        key: "file-secret-callers", value: rule.description,
        allowed: "a dir that is, or lies under, a file-secret-dirs entry")
    }
    try AgentKeyMaterial(stateDirectory: stateDirectory, caKey: caSource.files?.key)
      .refuse(secretDirectories: fileSecretDirectories)
    try nodeAgent.validate(remoteCA: istioCA != nil)
    if let foreign = nodeAgent.rules.first(where: { $0.identity.trustDomain != trustDomain }) {
      throw ConfigurationError(
        key: "workload", value: foreign.description, allowed: "a SPIFFE ID in the trust domain \"\(trustDomain)\"")
    }
    try workloadAPI.validate(sdsSocketPath: socketPath)
    self.workloadAPI = workloadAPI
    self.nodeAgent = nodeAgent
    self.socketPath = socketPath
    self.socketMode = socketMode
    self.stateDirectory = stateDirectory
    self.trustDomain = trustDomain
    self.identity = identity
    self.certificateTTL = certificateTTL
    self.keyType = keyType
    self.rotation = rotation
    self.rootOverlap = rootOverlap
    self.crlValidity = crlValidity
    self.federatedBundles = federatedBundles
    self.spiffeValidator = spiffeValidator
    self.onDemand = onDemand
    self.fileSecrets = fileSecrets
    self.fileSecretDirectories = fileSecretDirectories
    self.fileSecretCallers = fileSecretCallers
    self.caSource = caSource
    self.istioCA = istioCA
    self.logLevel = logLevel
    self.logFormat = logFormat
    self.admin = admin
  }
}
