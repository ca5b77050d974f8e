import Foundation
import Logging
import SDSAgentCore

/// Builds the agent's configuration from flags, `SDS_AGENT_*` environment variables and the
/// config file (in that order of precedence), reading each key through its declaration in
/// `AgentSettings`. `sds-agent run` and `sds-agent check-config` both use it, and reload re-runs it.
package struct ConfigurationLoader: Sendable {
  package let flags: [String: [String]]
  package let environment: [String: String]
  package let configFile: String?

  package init(
    flags: [String: [String]],
    environment: [String: String] = ProcessInfo.processInfo.environment,
    configFile: String? = nil
  ) {
    self.flags = flags
    self.environment = environment
    self.configFile =
      configFile ?? flags[AgentSettings.config.key]?.last
      ?? environment[AgentSettings.config.declaration.environmentName].flatMap { $0.isEmpty ? nil : $0 }
  }

  /// The loader for `run`'s arguments, read against `AgentSettings.all`.
  package init(
    arguments: [String],
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(ConfigurationError) {
    self.init(
      flags: try CommandLineSettings.parse(arguments, declarations: AgentSettings.all), environment: environment)
  }

  /// The layered settings, reading the config file now.
  package func settings() throws(ConfigurationError) -> SettingsSource {
    let file = try self.configFile.map { path throws(ConfigurationError) in
      try ConfigFile.load(path: path, declarations: AgentSettings.fileSettings)
    }
    return SettingsSource(flags: self.flags, environment: self.environment, file: file ?? [:])
  }

  /// Where a client command (`fetch`, `drill`) finds the agent: the same flags, environment and
  /// config file as `run`, so an operator's `SDS_AGENT_CONFIG` is enough.
  package func agentEndpoints() throws(ConfigurationError) -> (
    socketPath: String, admin: AgentConfiguration.AdminAddress?
  ) {
    let settings = try self.settings()
    let socket =
      try settings.read(AgentSettings.socket) ?? DefaultPaths.resolve(environment: self.environment).socketPath
    return (socket, try settings.read(AgentSettings.admin))
  }

  package func load() throws(ConfigurationError) -> AgentConfiguration {
    try Self.configuration(from: try self.settings(), environment: self.environment)
  }

  /// The effective value and origin of every key, for `check-config`.
  package func effectiveSettings() throws(ConfigurationError) -> [(key: String, value: String, origin: String)] {
    let settings = try self.settings()
    let configuration = try Self.configuration(from: settings, environment: self.environment)
    return AgentSettings.fileSettings.map { setting in
      let origin =
        setting.kind.isRepeatable
        ? settings.values(setting.key)?.origin.rawValue : settings.value(setting.key)?.origin.rawValue
      return (setting.key, setting.effective(configuration), origin ?? "default")
    }
  }

  static func configuration(from settings: SettingsSource, environment: [String: String]) throws(ConfigurationError)
    -> AgentConfiguration
  {
    let s = AgentSettings.self
    let defaults = DefaultPaths.resolve(environment: environment)
    let trustDomain = try settings.require(s.trustDomain)
    var identity = try settings.read(s.identity)
    let ratio = try settings.require(s.rotationRatio)
    let jitter = try settings.read(s.rotationJitter) ?? min(0.1, min(ratio, 1 - ratio) / 2)
    guard jitter < min(ratio, 1 - ratio) else {
      throw settings.invalid(s.rotationJitter.key, allowed: s.rotationJitter.allowed)
    }
    let caSource = try Self.caSource(settings)
    let istioCA = try self.istioCAConfiguration(settings)
    if identity == nil, let istioCA, let tokenFile = istioCA.tokenFile {
      identity = try self.identity(fromTokenFile: tokenFile, trustDomain: trustDomain)
    }
    var configuration = try AgentConfiguration(
      socketPath: try settings.read(s.socket) ?? defaults.socketPath,
      socketMode: try settings.require(s.socketMode),
      stateDirectory: try settings.read(s.stateDirectory) ?? defaults.stateDirectory,
      trustDomain: trustDomain,
      identity: identity,
      certificateTTL: try settings.require(s.certificateTTL),
      keyType: try settings.require(s.keyType),
      rotation: RotationSchedule(ratio: ratio, jitter: jitter),
      rootOverlap: try settings.require(s.rootOverlap),
      crlValidity: try settings.require(s.crlValidity),
      federatedBundles: try settings.readAll(s.trustBundle),
      spiffeValidator: try settings.require(s.spiffeValidator),
      onDemand: try Self.onDemand(settings),
      fileSecrets: try settings.readAll(s.secret),
      fileSecretDirectories: try settings.readAll(s.fileSecretDirs),
      fileSecretCallers: try settings.readAll(s.fileSecretCallers),
      caSource: caSource,
      istioCA: istioCA,
      logLevel: try settings.require(s.logLevel),
      logFormat: try settings.require(s.logFormat),
      admin: try settings.read(s.admin),
      nodeAgent: NodeAgentConfiguration(
        identification: try settings.require(s.callerIdentity),
        rules: try settings.readAll(s.workload),
        jwtKeysFile: try settings.read(s.jwtKeys),
        limits: CallerLimits(
          streamRate: try settings.require(s.callerStreamRate),
          certificateRate: try settings.require(s.callerCertificateRate),
          idleTimeout: try settings.require(s.workloadIdleTimeout)
        )
      ),
      workloadAPI: try AgentSettings.workloadAPIConfiguration(settings)
    )
    configuration.caRootCRL = try AgentSettings.rootCRLFile(settings, caSource: caSource)
    configuration.intermediateCRL = try settings.require(AgentSettings.intermediateCRL)
    configuration.istioCredentialSockets = try AgentSettings.credentialSocketsDirectory(
      settings, socketPath: configuration.socketPath, workloadAPISocket: configuration.workloadAPI.socketPath)
    configuration.sessionTicketKeys = try AgentSettings.sessionTicketKeySources(
      settings, fileSecrets: configuration.fileSecrets)
    return configuration
  }

  /// On-demand certificates, when names are allowed.
  static func onDemand(_ settings: SettingsSource) throws(ConfigurationError) -> OnDemandSettings? {
    let s = AgentSettings.self
    let patterns = try settings.readAll(s.onDemandNames)
    guard !patterns.isEmpty else { return nil }
    // One identity for every caller: everyone may, unless callers are named. A node agent: only
    // the callers named.
    let callers = try settings.readAll(s.onDemandCallers)
    let oneIdentity = try settings.require(s.callerIdentity) == .agent
    return OnDemandSettings(
      patterns: patterns, ttl: try settings.require(s.onDemandTTL), keyType: try settings.require(s.onDemandKeyType),
      maximumNames: try settings.require(s.onDemandMaxNames), rate: try settings.require(s.onDemandRate),
      idleTimeout: try settings.require(s.workloadIdleTimeout),
      callers: oneIdentity && callers.isEmpty ? nil : Set(callers))
  }

  /// The signing CA: generated, or the operator's files (`ca-cert` and `ca-key` together).
  /// `ca serve` reads its overlapping keys through this too.
  package static func caSource(_ settings: SettingsSource) throws(ConfigurationError) -> AgentConfiguration.CASource {
    let s = AgentSettings.self
    let chain = try settings.read(s.caChain)
    switch (try settings.read(s.caCertificate), try settings.read(s.caKey)) {
    case (nil, nil):
      if let chain {
        throw ConfigurationError(key: s.caChain.key, value: chain, allowed: "only together with ca-cert and ca-key")
      }
      return .generated
    case (let certificate?, let key?):
      return .files(certificate: certificate, key: key, chain: chain)
    case (let certificate?, nil):
      throw ConfigurationError(
        key: s.caKey.key, value: "", allowed: "a key file, because ca-cert \(certificate) is set")
    case (nil, let key?):
      throw ConfigurationError(
        key: s.caCertificate.key, value: "", allowed: "a certificate file, because ca-key \(key) is set")
    }
  }

  static func istioCAConfiguration(_ settings: SettingsSource) throws(ConfigurationError) -> IstioCAConfiguration? {
    let s = AgentSettings.self
    guard try settings.read(s.ca) == "istio" else { return nil }
    let addresses = try settings.readAll(s.caAddress)
    guard let address = addresses.first else {
      throw ConfigurationError(key: s.caAddress.key, value: "", allowed: "HOST:PORT of the CA, because ca is istio")
    }
    var headers: [String: String] = [:]
    for header in try settings.readAll(s.caHeader) {
      headers[header.name] = header.value
    }
    let defaultToken = AgentSettings.defaultTokenFile
    let tokenFile =
      try settings.read(s.tokenFile) ?? (FileManager.default.fileExists(atPath: defaultToken) ? defaultToken : nil)
    var configuration = try IstioCAConfiguration(
      host: address.host,
      port: address.port,
      rootsFile: try settings.read(s.caRoot),
      serverName: try settings.read(s.caServerName),
      insecurePlaintext: try settings.require(s.caInsecurePlaintext),
      tokenFile: tokenFile,
      clusterID: try settings.require(s.clusterID),
      extraHeaders: headers
    )
    configuration.addresses = addresses
    configuration.crlFile = try settings.read(s.caCRL)
    configuration.crlRefresh = try settings.require(s.crlRefresh)
    return configuration
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
}
