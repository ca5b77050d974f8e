import Logging
import SDSAgent
import SDSAgentCore

/// Sets up an `AgentConfiguration` field by field for a test; `build()` goes through the
/// validating initializer, so a test can never run an agent with a configuration `run` would
/// refuse.
package struct AgentConfigurationBuilder: Sendable {
  package var socketPath: String
  package var socketMode: UInt32 = 0o660
  package var stateDirectory: String
  package var trustDomain = "cluster.local"
  package var identity: SPIFFEID?
  package var certificateTTL: Duration = .seconds(3600)
  package var keyType: WorkloadKeyType = .ecdsaP256
  package var rotation = RotationSchedule()
  package var rootOverlap: Duration = .seconds(3600)
  package var crlValidity: Duration = .seconds(4 * 3600)
  package var federatedBundles: [FederatedBundleSource] = []
  package var spiffeValidator = true
  package var onDemand: OnDemandSettings?
  package var fileSecrets: [FileSecretSource] = []
  package var fileSecretDirectories: [String] = []
  package var fileSecretCallers: [FileSecretCallers] = []
  package var caSource: AgentConfiguration.CASource = .generated
  package var istioCA: IstioCAConfiguration?
  package var logLevel: Logger.Level = .warning
  package var logFormat: AgentConfiguration.LogFormat = .plain
  package var admin: AgentConfiguration.AdminAddress?
  package var identification: CallerIdentification = .agent
  package var rules: [WorkloadRule] = []
  package var jwtKeysFile: String?
  package var limits = CallerLimits()
  package var workloadAPI = WorkloadAPIConfiguration()

  /// A socket and state directory in `directory`.
  package init(directory: String = TemporaryDirectory.make()) {
    self.socketPath = directory + "/sds.sock"
    self.stateDirectory = directory + "/state"
  }

  /// Starts from a configuration that is already valid, to change a field or two.
  package init(_ configuration: AgentConfiguration) {
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
    self.workloadAPI = configuration.workloadAPI
  }

  package func build() throws(ConfigurationError) -> AgentConfiguration {
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
      crlValidity: self.crlValidity,
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
        identification: self.identification, rules: self.rules, jwtKeysFile: self.jwtKeysFile, limits: self.limits),
      workloadAPI: self.workloadAPI
    )
  }
}
