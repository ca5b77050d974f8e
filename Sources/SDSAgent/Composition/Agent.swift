import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import ServiceLifecycle
import UnixSignals

/// The assembled agent: the one place where configuration becomes running services. The
/// executable and the integration tests both build the agent here.
public struct Agent: Sendable {
  public let configuration: AgentConfiguration
  /// The socket SDS is served on: the one systemd passed, or `configuration.socketPath`.
  public let socketPath: String
  public let counters: AgentCounters
  public let streams: StreamRegistry
  /// The identities served: the agent's own (pinned) and, in node-agent mode, each calling
  /// workload's.
  public let identities: IdentityTable
  /// Identifies, limits and admits SDS callers.
  public let admission: CallerAdmission
  /// The SDS service the socket's server runs; tests also run it over an in-process transport.
  public let sdsService: SecretDiscoveryService
  /// In dependency order: the supervisor keeps every identity fresh, the server serves them, the
  /// admin endpoint and systemd integration report on both. Each says whether its end stops the
  /// agent: reporting services may finish early (no systemd), the supervisor and the server may not.
  let services: [ServiceGroupConfiguration.ServiceConfiguration]
  /// Who applies a new configuration on reload.
  let appliers: ReloadAppliers
  public let logger: Logger
  private let adminListening: Milestone
  private let sdsListening: Milestone

  /// The agent's own identity's secrets.
  public var cache: SecretCache { self.identities.pinnedCache }

  /// Returns once the admin endpoint accepts connections (never, without `--admin`).
  public func waitForAdminEndpoint() async {
    await self.adminListening.wait()
  }

  /// Returns once the SDS transport listens, with the socket's backlog set (never, if it fails).
  public func waitForSDSListening() async {
    await self.sdsListening.wait()
  }

  /// Issues a new SVID for `identity` (the agent's own by default) now and pushes it to every
  /// open stream of that identity.
  public func rotate(_ identity: SPIFFEID? = nil) async throws {
    try await self.identities.rotate(identity ?? self.identities.pinnedIdentity)
  }

  /// The appliers registered for reload, under the names live settings give them.
  package var registeredAppliers: Set<SettingApplier> { Set(self.appliers.registered.keys) }

  /// Applies `next` as a reload does (SIGHUP): every applier checks it, then applies it.
  package func reload(_ next: AgentConfiguration) async throws {
    try await self.appliers.apply(next)
  }

  /// When the agent's own SVID will be renewed.
  public var nextRotation: Date? { self.identities.lifecycle(of: self.identities.pinnedIdentity)?.renewAt }

  /// Loads the CA, issues the first SVID and binds the socket (or takes the one systemd passed).
  /// When this returns, the socket accepts connections and, with a local CA, the first
  /// certificate is in the cache.
  ///
  /// - Parameters:
  ///   - loader: re-reads the configuration on SIGHUP; without it there is no reload.
  ///   - logging: the process's logging, whose level reload changes.
  public static func build(
    configuration: AgentConfiguration,
    loader: ConfigurationLoader? = nil,
    logging: AgentLogging? = nil,
    logger: Logger,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) async throws -> Agent {
    let authority = try Self.authority(for: configuration, logger: logger)
    let caClient = authority.certificateAuthority as? IstioCAClient
    let metrics = PrometheusMetrics()
    let counters = AgentCounters(recorder: metrics)
    let streams = StreamRegistry()
    let identities = IdentityTable(
      pinned: configuration.identity,
      template: Self.identitySettings(configuration),
      idleTimeout: configuration.nodeAgent.limits.idleTimeout,
      now: Date()
    )
    let onDemand: OnDemandCertificates<ContinuousClock>? =
      if let settings = configuration.onDemand, case .embedded(let ca, _, _) = authority {
        OnDemandCertificates(
          settings: settings, ca: ca, table: identities, counters: counters, clock: ContinuousClock(),
          now: { Date() }, logger: logger)
      } else { nil }
    let rootRotation = try Self.rootRotation(
      authority, configuration: configuration, identities: identities, streams: streams, onDemand: onDemand,
      logger: logger)
    let following = try caClient.map { client in
      try FollowingCA(
        client: client, table: identities,
        fileRoots: try configuration.istioCA?.rootsFile.map(CARootsWatcher.roots(in:))?.roots ?? [],
        retention: { identities.template.ttl }, logger: logger)
    }
    let caRoots = following.flatMap { following in
      configuration.istioCA?.rootsFile.map { path in
        CARootsWatcher(
          path: path, ca: following, counters: counters, trustDomain: configuration.trustDomain, logger: logger)
      }
    }
    let operatorCA: OperatorCAReplacement<ContinuousClock>? =
      if case .embedded(let ca, _, nil) = authority {
        OperatorCAReplacement(
          ca: ca, table: identities, onDemand: onDemand, clock: ContinuousClock(), now: { Date() }, logger: logger)
      } else { nil }
    let files = FileSecretWatcher(
      sources: configuration.fileSecrets, policy: configuration.onTheFlyFiles, keyMaterial: configuration.keyMaterial,
      table: identities, counters: counters, logger: logger)
    let federation = try FederatedBundleWatcher(
      sources: configuration.federatedBundles, table: identities, counters: counters, logger: logger)
    let supervisor = IdentitySupervisor(
      table: identities, authority: following ?? authority.certificateAuthority, counters: counters,
      clock: ContinuousClock(),
      now: { Date() },
      logger: logger)
    let admission = CallerAdmission(
      attestor: try await Self.attestor(configuration.nodeAgent, of: configuration, remoteCA: caClient != nil),
      limiter: CallerRateLimiter(limits: configuration.nodeAgent.limits),
      table: identities,
      counters: counters,
      logger: logger
    )
    if caClient == nil {
      // The local CA answers at once: the first certificate exists before the socket does.
      try await supervisor.performDueWork(for: configuration.identity)
    }
    // A remote CA is asked by the rotator as soon as the services run (its connection is one of
    // them); the agent serves once it answers, and retries with backoff while it does not.

    DescriptorLimit.raiseToHardLimit(logger: logger)
    let sdsListening = Milestone()
    let descriptor: Int32
    let ownsSocketFile: UnixSocketListener?
    if let activated = try SocketActivation.listeningDescriptor(environment: environment) {
      descriptor = activated
      ownsSocketFile = nil
      logger.info(
        "using the socket passed by systemd",
        metadata: ["path": "\(SocketActivation.path(of: activated) ?? "?")"]
      )
    } else {
      let listener = try UnixSocketListener.bind(path: configuration.socketPath, mode: configuration.socketMode)
      descriptor = listener.descriptor
      ownsSocketFile = listener
    }
    let sdsService = SecretDiscoveryService(
      leases: admission, counters: counters, registry: streams, logger: logger,
      spiffeValidator: configuration.spiffeValidator, onDemand: onDemand, files: files)
    let sdsServer = SDSSocketServer(
      descriptor: descriptor, service: sdsService, peerCredentials: configuration.nodeAgent.identification.usesPeer,
      limits: SDSServerLimits(), logger: logger,
      onListening: {
        UnixSocketListener.restoreBacklog(of: descriptor, logger: logger)
        sdsListening.reach()
      },
      onStop: { ownsSocketFile?.removeSocketFile() })
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = caClient.map { [.auxiliary($0)] } ?? []
    services += [
      .essential(supervisor)
    ]
    if let rootRotation {
      services.append(.essential(rootRotation))
    }
    // Always: a reload may add trust bundles to watch.
    services.append(.auxiliary(federation))
    if let caRoots {
      services.append(.auxiliary(caRoots))
    }
    if let operatorCA {
      services.append(.essential(operatorCA))
    }
    if let onDemand {
      services.append(.essential(onDemand))
    }
    services.append(.auxiliary(files))
    services += [
      .essential(sdsServer)
    ]
    let adminListening = Milestone()
    if let admin = configuration.admin {
      var routes = AdminRoutes(
        identities: identities, counters: counters, streams: streams, metrics: metrics,
        trust: TrustRoutes(
          rotation: rootRotation, identities: identities, federation: federation,
          notRotatable: authority.notRotatable),
        certificateAuthority: configuration.istioCA.map { "the Istio-compatible CA at \($0.host):\($0.port)" }
          ?? "the local CA")
      routes.onDemand = onDemand
      services.append(
        .auxiliary(AdminServer(address: admin, routes: routes, listening: adminListening, logger: logger)))
    }
    let notifier = SystemdNotifier(environment: environment)
    services.append(
      .auxiliary(
        SystemdService(
          notifier: notifier,
          watchdogInterval: SystemdNotifier.watchdogInterval(environment: environment),
          socketPath: SocketActivation.path(of: descriptor) ?? configuration.socketPath,
          identities: identities,
          counters: counters,
          logger: logger
        ))
    )
    let appliers = ReloadAppliers(registered: [
      .logging: logging, .rootRotation: rootRotation, .federation: federation,
      .fileSecrets: FileSecretsReload(files: files, running: configuration), .caRoots: caRoots,
      .operatorCA: OperatorCAReload(replacement: operatorCA, running: configuration),
      .admission: AdmissionReload(admission: admission, running: configuration, remoteCA: caClient != nil),
      .identities: IdentitiesReload(identities: identities, logger: logger), .onDemand: onDemand,
    ])
    if let loader {
      services.append(
        .auxiliary(
          ReloadService(
            loader: loader, current: configuration, signals: await UnixSignalsSequence(trapping: .sighup),
            appliers: appliers, notifier: notifier, logger: logger)))
    }
    return Agent(
      configuration: configuration,
      socketPath: SocketActivation.path(of: descriptor) ?? configuration.socketPath,
      counters: counters,
      streams: streams,
      identities: identities,
      admission: admission,
      sdsService: sdsService,
      services: services,
      appliers: appliers,
      logger: logger,
      adminListening: adminListening,
      sdsListening: sdsListening
    )
  }

  /// How every identity's certificates are issued.
  static func identitySettings(_ configuration: AgentConfiguration) -> IdentitySettings {
    IdentitySettings(
      keyType: configuration.keyType,
      ttl: configuration.certificateTTL,
      schedule: configuration.rotation,
      // Retry at least ten times within a lifetime, so a CA that comes back is used soon.
      backoff: Backoff(maximum: max(.seconds(2), min(.seconds(60), configuration.certificateTTL / 10)))
    )
  }

  /// Identifies callers as `node` says, for the agent `configuration` describes.
  static func attestor(
    _ node: NodeAgentConfiguration, of configuration: AgentConfiguration, remoteCA: Bool
  ) async throws -> CallerAttestor {
    var authenticator: JWTCallerAuthenticator?
    if let path = node.jwtKeysFile {
      authenticator = try await JWTCallerAuthenticator.load(keysFile: path, trustDomain: configuration.trustDomain)
    }
    return CallerAttestor(
      mode: node.identification,
      rules: node.rules,
      agentIdentity: configuration.identity,
      authenticator: authenticator,
      remoteCA: remoteCA,
      executable: ProcessExecutable.path(of:)
    )
  }

  /// Longest a graceful shutdown may take before the remaining work is cancelled; well under
  /// systemd's default stop timeout (90 s) and the unit's `TimeoutStopSec`.
  public static let shutdownLimit = Duration.seconds(10)

  /// The service group that runs every service, shutting down gracefully on these signals.
  public func makeServiceGroup(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
    var configuration = ServiceGroupConfiguration(
      services: self.services,
      gracefulShutdownSignals: gracefulShutdownSignals,
      logger: self.logger
    )
    configuration.maximumGracefulShutdownDuration = Self.shutdownLimit
    return ServiceGroup(configuration: configuration)
  }

  /// Runs every service until SIGTERM or SIGINT, then shuts down gracefully.
  public func run() async throws {
    try await self.makeServiceGroup().run()
  }
}

extension ServiceGroupConfiguration.ServiceConfiguration {
  /// A service the agent cannot run without: when it ends, the agent shuts down.
  static func essential(_ service: any Service) -> Self {
    .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)
  }

  /// A service that may finish early (no systemd, no admin endpoint) without stopping the agent.
  static func auxiliary(_ service: any Service) -> Self {
    .init(service: service, successTerminationBehavior: .ignore)
  }
}
