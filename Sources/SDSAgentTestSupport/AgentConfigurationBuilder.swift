import Logging
import SDSAgent
import SDSAgentCore

/// Sets up an `AgentConfiguration` field by field for a test; `build()` goes through the
/// validating initializer, so a test can never run an agent with a configuration `run` would
/// refuse.
public struct AgentConfigurationBuilder: Sendable {
  public var socketPath: String
  public var socketMode: UInt32 = 0o660
  public var stateDirectory: String
  public var trustDomain = "cluster.local"
  public var identity: SPIFFEID?
  public var certificateTTL: Duration = .seconds(3600)
  public var keyType: WorkloadKeyType = .ecdsaP256
  public var rotation = RotationSchedule()
  public var rootOverlap: Duration = .seconds(3600)
  public var federatedBundles: [FederatedBundleSource] = []
  public var spiffeValidator = true
  public var onDemand: OnDemandSettings?
  public var fileSecrets: [FileSecretSource] = []
  public var fileSecretDirectories: [String] = []
  public var fileSecretCallers: [FileSecretCallers] = []
  public var caSource: AgentConfiguration.CASource = .generated
  public var istioCA: IstioCAConfiguration?
  public var logLevel: Logger.Level = .warning
  public var logFormat: AgentConfiguration.LogFormat = .plain
  public var admin: AgentConfiguration.AdminAddress?
  public var identification: CallerIdentification = .agent
  public var rules: [WorkloadRule] = []
  public var jwtKeysFile: String?
  public var limits = CallerLimits()

  /// A socket and state directory in `directory`.
  public init(directory: String = TemporaryDirectory.make()) {
    self.socketPath = directory + "/sds.sock"
    self.stateDirectory = directory + "/state"
  }

  /// Starts from a configuration that is already valid, to change a field or two.
  public init(_ configuration: AgentConfiguration) {
    self.socketPath = configuration.socketPath
    self.socketMode = configuration.socketMode
    self.stateDirectory = configuration.stateDirectory
    self.trustDomain = configuration.trustDomain
    self.identity = configuration.identity
    self.certificateTTL = configuration.certificateTTL
    self.keyType = configuration.keyType
    self.rotation = configuration.rotation
    self.rootOverlap = configuration.rootOverlap
    self.federatedBundles = configuration.federatedBundles
    self.spiffeValidator = configuration.spiffeValidator
    self.onDemand = configuration.onDemand
    self.fileSecrets = configuration.fileSecrets
    self.fileSecretDirectories = configuration.fileSecretDirectories
    self.fileSecretCallers = configuration.fileSecretCallers
    self.caSource = configuration.caSource
    self.istioCA = configuration.istioCA
    self.logLevel = configuration.logLevel
    self.logFormat = configuration.logFormat
    self.admin = configuration.admin
    self.identification = configuration.nodeAgent.identification
    self.rules = configuration.nodeAgent.rules
    self.jwtKeysFile = configuration.nodeAgent.jwtKeysFile
    self.limits = configuration.nodeAgent.limits
  }

  public func build() throws(ConfigurationError) -> AgentConfiguration {
    try AgentConfiguration(
      socketPath: self.socketPath,
      socketMode: self.socketMode,
      stateDirectory: self.stateDirectory,
      trustDomain: self.trustDomain,
      identity: self.identity,
      certificateTTL: self.certificateTTL,
      keyType: self.keyType,
      rotation: self.rotation,
      rootOverlap: self.rootOverlap,
      federatedBundles: self.federatedBundles,
      spiffeValidator: self.spiffeValidator,
      onDemand: self.onDemand,
      fileSecrets: self.fileSecrets,
      fileSecretDirectories: self.fileSecretDirectories,
      fileSecretCallers: self.fileSecretCallers,
      caSource: self.caSource,
      istioCA: self.istioCA,
      logLevel: self.logLevel,
      logFormat: self.logFormat,
      admin: self.admin,
      nodeAgent: NodeAgentConfiguration(
        identification: self.identification, rules: self.rules, jwtKeysFile: self.jwtKeysFile, limits: self.limits)
    )
  }
}
