import Foundation
import Logging
import SDSAgentCore

/// Builds the agent's configuration from flags, `SDS_AGENT_*` environment variables and the
/// config file (in that order of precedence), with errors that name the key, the value and what
/// is allowed. `sds-agent run` and `sds-agent check-config` both use it, and reload re-runs it.
public struct ConfigurationLoader: Sendable {
  /// Every key of `run`, as flag name, config-file key and `SDS_AGENT_<KEY>`.
  public static let keys: [String] = [
    "socket", "socket-mode", "state-dir", "trust-domain", "identity", "cert-ttl", "key-type",
    "rotation-ratio", "rotation-jitter", "ca-cert", "ca-key", "ca-chain", "ca", "ca-address", "ca-root",
    "ca-server-name", "ca-insecure-plaintext", "token-file", "cluster-id", "ca-header", "log-level",
    "log-format", "admin", "caller-identity", "workload", "jwt-keys", "workload-idle-timeout", "caller-stream-rate",
    "caller-certificate-rate",
  ]

  public var flags: [String: [String]]
  public var environment: [String: String]
  public var configFile: String?

  public init(
    flags: [String: [String]],
    environment: [String: String] = ProcessInfo.processInfo.environment,
    configFile: String? = nil
  ) {
    self.flags = flags
    self.environment = environment
    self.configFile = configFile ?? environment["SDS_AGENT_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
  }

  /// The layered settings, reading the config file now.
  public func settings() throws(ConfigurationError) -> SettingsSource {
    let file = try self.configFile.map { path throws(ConfigurationError) in
      try ConfigFile.load(path: path, knownKeys: Set(Self.keys))
    }
    return SettingsSource(flags: self.flags, environment: self.environment, file: file ?? [:])
  }

  /// Where a client command (`fetch`, `drill`) finds the agent: the same flags, environment and
  /// config file as `run`, so an operator's `SDS_AGENT_CONFIG` is enough.
  public func agentEndpoints() throws(ConfigurationError) -> (
    socketPath: String, admin: AgentConfiguration.AdminAddress?
  ) {
    let settings = try self.settings()
    let admin = try Self.adminAddress(settings)
    let socket = settings.value("socket")?.value ?? DefaultPaths.resolve(environment: self.environment).socketPath
    return (socket, admin)
  }

  public func load() throws(ConfigurationError) -> AgentConfiguration {
    try Self.configuration(from: try self.settings(), environment: self.environment)
  }

  /// The effective value and origin of every key, for `check-config`.
  public func effectiveSettings() throws(ConfigurationError) -> [(key: String, value: String, origin: String)] {
    let settings = try self.settings()
    let configuration = try Self.configuration(from: settings, environment: self.environment)
    return Self.keys.map { key in
      let origin = settings.value(key)?.origin.rawValue ?? "default"
      return (key, Self.describe(key, in: configuration), origin)
    }
  }

  static func configuration(from settings: SettingsSource, environment: [String: String]) throws(ConfigurationError)
    -> AgentConfiguration
  {
    let defaults = DefaultPaths.resolve(environment: environment)
    let trustDomain = settings.value("trust-domain")?.value ?? "cluster.local"
    var identity = try settings.parse(
      "identity", allowed: "a SPIFFE ID such as spiffe://cluster.local/ns/default/sa/default"
    ) {
      try? SPIFFEID(parsing: $0)
    }
    let ttl = try settings.parse("cert-ttl", allowed: "a duration such as 30s, 1h or 24h", DurationParser.parse)
    let keyType = try settings.parse("key-type", allowed: "ecdsa-p256 or rsa-2048", WorkloadKeyType.init(rawValue:))
    let mode = try settings.parse("socket-mode", allowed: "octal permission bits such as 0660") {
      UInt32($0, radix: 8).flatMap { $0 <= 0o777 ? $0 : nil }
    }
    let ratio =
      try settings.parse("rotation-ratio", allowed: "a number between 0.1 and 0.9") {
        Double($0).flatMap { (0.1...0.9).contains($0) ? $0 : nil }
      } ?? 0.5
    let jitter =
      try settings.parse("rotation-jitter", allowed: "a number from 0 to less than min(ratio, 1 - ratio)") {
        Double($0).flatMap { $0 >= 0 && $0 < min(ratio, 1 - ratio) ? $0 : nil }
      } ?? min(0.1, min(ratio, 1 - ratio) / 2)
    let level = try settings.parse(
      "log-level",
      allowed: "trace, debug, info, notice, warning, error or critical",
      Logger.Level.init(rawValue:)
    )
    let format = try settings.parse(
      "log-format", allowed: "plain or json", AgentConfiguration.LogFormat.init(rawValue:))
    let admin = try Self.adminAddress(settings)

    let caSource: AgentConfiguration.CASource
    switch (settings.value("ca-cert")?.value, settings.value("ca-key")?.value) {
    case (nil, nil):
      if let chain = settings.value("ca-chain")?.value {
        throw ConfigurationError(key: "ca-chain", value: chain, allowed: "only together with ca-cert and ca-key")
      }
      caSource = .generated
    case (let certificate?, let key?):
      caSource = .files(certificate: certificate, key: key, chain: settings.value("ca-chain")?.value)
    case (let certificate?, nil):
      throw ConfigurationError(key: "ca-key", value: "", allowed: "a key file, because ca-cert \(certificate) is set")
    case (nil, let key?):
      throw ConfigurationError(key: "ca-cert", value: "", allowed: "a certificate file, because ca-key \(key) is set")
    }

    let istioCA = try self.istioCAConfiguration(settings)
    if identity == nil, let istioCA, let tokenFile = istioCA.tokenFile {
      identity = try self.identity(fromTokenFile: tokenFile, trustDomain: trustDomain)
    }

    let nodeAgent = try self.nodeAgentConfiguration(settings)

    return try AgentConfiguration(
      socketPath: settings.value("socket")?.value ?? defaults.socketPath,
      socketMode: mode ?? 0o660,
      stateDirectory: settings.value("state-dir")?.value ?? defaults.stateDirectory,
      trustDomain: trustDomain,
      identity: identity,
      certificateTTL: ttl ?? .seconds(86400),
      keyType: keyType ?? .ecdsaP256,
      rotation: RotationSchedule(ratio: ratio, jitter: jitter),
      caSource: caSource,
      istioCA: istioCA,
      logLevel: level ?? .info,
      logFormat: format ?? .plain,
      admin: admin,
      nodeAgent: nodeAgent
    )
  }

  static func nodeAgentConfiguration(_ settings: SettingsSource) throws(ConfigurationError) -> NodeAgentConfiguration {
    let modes = CallerIdentification.allCases.map(\.rawValue).joined(separator: ", ")
    let mode = try settings.parse("caller-identity", allowed: modes, CallerIdentification.init(rawValue:)) ?? .agent
    var rules: [WorkloadRule] = []
    for text in settings.values("workload", separator: ";") {
      rules.append(try WorkloadRule(parsing: text))
    }
    let defaults = CallerLimits()
    let idle = try settings.parse("workload-idle-timeout", allowed: "a duration such as 10m", DurationParser.parse)
    let streams = try settings.parse("caller-stream-rate", allowed: "a rate such as 50/s, 600/m or 1000/h") {
      Rate(parsing: $0)
    }
    let certificates = try settings.parse("caller-certificate-rate", allowed: "a rate such as 10/m") {
      Rate(parsing: $0)
    }
    return NodeAgentConfiguration(
      identification: mode,
      rules: rules,
      jwtKeysFile: settings.value("jwt-keys")?.value,
      limits: .init(
        streamRate: streams ?? defaults.streamRate,
        certificateRate: certificates ?? defaults.certificateRate,
        idleTimeout: idle ?? defaults.idleTimeout
      )
    )
  }

  static func adminAddress(_ settings: SettingsSource) throws(ConfigurationError) -> AgentConfiguration.AdminAddress? {
    try settings.parse("admin", allowed: "127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:/absolute/path") {
      AgentConfiguration.AdminAddress($0)
    }
  }

  static func istioCAConfiguration(_ settings: SettingsSource) throws(ConfigurationError) -> IstioCAConfiguration? {
    let mode = settings.value("ca")?.value ?? "local"
    switch mode {
    case "local": return nil
    case "istio": break
    default: throw ConfigurationError(key: "ca", value: mode, allowed: "local or istio")
    }
    guard let addressText = settings.value("ca-address")?.value else {
      throw ConfigurationError(key: "ca-address", value: "", allowed: "HOST:PORT of the CA, because ca is istio")
    }
    guard let address = IstioCAConfiguration.parseAddress(addressText) else {
      throw ConfigurationError(
        key: "ca-address", value: addressText, allowed: "HOST:PORT, e.g. istiod.istio-system.svc:15012")
    }
    var headers: [String: String] = [:]
    for header in settings.values("ca-header") {
      guard let equals = header.firstIndex(of: "="), equals != header.startIndex else {
        throw ConfigurationError(key: "ca-header", value: header, allowed: "KEY=VALUE")
      }
      headers[String(header[..<equals])] = String(header[header.index(after: equals)...])
    }
    let plaintext = try settings.parse("ca-insecure-plaintext", allowed: "true or false") { Bool($0) } ?? false
    let defaultToken = "/var/run/secrets/tokens/istio-token"
    let tokenFile =
      settings.value("token-file")?.value ?? (FileManager.default.fileExists(atPath: defaultToken) ? defaultToken : nil)
    return try IstioCAConfiguration(
      host: address.host,
      port: address.port,
      rootsFile: settings.value("ca-root")?.value,
      serverName: settings.value("ca-server-name")?.value,
      insecurePlaintext: plaintext,
      tokenFile: tokenFile,
      clusterID: settings.value("cluster-id")?.value ?? "Kubernetes",
      extraHeaders: headers
    )
  }

  /// The identity a token names, as Istio derives it from `system:serviceaccount:<ns>:<sa>`.
  static func identity(fromTokenFile path: String, trustDomain: String) throws(ConfigurationError) -> SPIFFEID {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigurationError(key: "token-file", value: path, allowed: "a readable JWT file")
    }
    let subject: String?
    do {
      subject = try UnverifiedJWT(String(decoding: data, as: UTF8.self)).subject
    } catch {
      throw ConfigurationError(key: "token-file", value: path, allowed: "a JWT (\(error.message))")
    }
    guard let subject, let account = ServiceAccount(subject: subject) else {
      throw ConfigurationError(
        key: "identity",
        value: "",
        allowed:
          "a SPIFFE ID, because the token's subject \(subject ?? "(none)") is not system:serviceaccount:<ns>:<sa>"
      )
    }
    do {
      return try account.spiffeID(trustDomain: trustDomain)
    } catch {
      throw ConfigurationError(key: "token-file", value: path, allowed: error.reason)
    }
  }

  static func describe(_ key: String, in configuration: AgentConfiguration) -> String {
    let istio = configuration.istioCA
    switch key {
    case "socket": return configuration.socketPath
    case "socket-mode": return "0" + String(configuration.socketMode, radix: 8)
    case "state-dir": return configuration.stateDirectory
    case "trust-domain": return configuration.trustDomain
    case "identity": return configuration.identity.description
    case "cert-ttl": return DurationParser.format(configuration.certificateTTL)
    case "key-type": return configuration.keyType.rawValue
    case "rotation-ratio": return "\(configuration.rotation.ratio)"
    case "rotation-jitter": return "\(configuration.rotation.jitter)"
    case "ca-cert", "ca-key", "ca-chain":
      guard case .files(let certificate, let keyPath, let chain) = configuration.caSource else { return "" }
      return key == "ca-cert" ? certificate : key == "ca-key" ? keyPath : chain ?? ""
    case "ca": return istio == nil ? "local" : "istio"
    case "ca-address": return istio.map { "\($0.host):\($0.port)" } ?? ""
    case "ca-root": return istio?.rootsFile ?? ""
    case "ca-server-name": return istio?.serverName ?? ""
    case "ca-insecure-plaintext": return "\(istio?.insecurePlaintext ?? false)"
    case "token-file": return istio?.tokenFile ?? ""
    case "cluster-id": return istio?.clusterID ?? ""
    case "ca-header":
      return (istio?.extraHeaders ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
        separator: ",")
    case "log-level": return configuration.logLevel.rawValue
    case "log-format": return configuration.logFormat.rawValue
    case "admin": return configuration.admin?.description ?? "off"
    case "caller-identity": return configuration.nodeAgent.identification.rawValue
    case "workload": return configuration.nodeAgent.rules.map(\.description).joined(separator: "; ")
    case "jwt-keys": return configuration.nodeAgent.jwtKeysFile ?? ""
    case "workload-idle-timeout": return DurationParser.format(configuration.nodeAgent.limits.idleTimeout)
    case "caller-stream-rate": return configuration.nodeAgent.limits.streamRate.description
    case "caller-certificate-rate": return configuration.nodeAgent.limits.certificateRate.description
    default: return ""
    }
  }
}
