import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import UnixSignals

/// The assembled agent: the one place where configuration becomes running services. The
/// executable and the integration tests both build the agent here.
package struct Agent: Sendable {
  package let configuration: AgentConfiguration
  /// The socket SDS is served on: the one systemd passed, or `configuration.socketPath`.
  package let socketPath: String
  package let counters: AgentCounters
  package let streams: StreamRegistry
  /// The identities served: the agent's own (pinned) and, in node-agent mode, each calling
  /// workload's.
  package let identities: IdentityTable
  /// Identifies, limits and admits SDS callers.
  package let admission: CallerAdmission
  /// The SDS service the socket's server runs; tests also serve it on sockets of their own.
  package let sdsService: SecretDiscoveryService
  /// In dependency order: the supervisor keeps every identity fresh, the server serves them, the
  /// admin endpoint and systemd integration report on both. Each says whether its end stops the
  /// agent: reporting services may finish early (no systemd), the supervisor and the server may not.
  let services: [ServiceGroupConfiguration.ServiceConfiguration]
  /// Who applies a new configuration on reload.
  let appliers: ReloadAppliers
  package let logger: Logger
  private let adminListening: Milestone
  private let sdsListening: Milestone
  /// Where workloads find the SPIFFE Workload API (`SPIFFE_ENDPOINT_SOCKET`): its own socket if
  /// configured, else the SDS socket; nil when it is off.
  package let workloadAPISocketPath: String?

  /// The agent's own identity's secrets.
  package var cache: SecretCache { self.identities.pinnedCache }

  /// Returns once the admin endpoint accepts connections (never, without `--admin`).
  package func waitForAdminEndpoint() async {
    await self.adminListening.wait()
  }

  /// Returns once the SDS transport listens, with the socket's backlog set (never, if it fails).
  package func waitForSDSListening() async {
    await self.sdsListening.wait()
  }

  /// Issues a new SVID for `identity` (the agent's own by default) now and pushes it to every
  /// open stream of that identity.
  package func rotate(_ identity: SPIFFEID? = nil) async throws {
    try await self.identities.rotate(identity ?? self.identities.pinnedIdentity)
  }

  /// The appliers registered for reload, under the names live settings give them.
  package var registeredAppliers: Set<SettingApplier> { Set(self.appliers.registered.keys) }

  /// Applies `next` as a reload does (SIGHUP): every applier checks it, then applies it.
  package func reload(_ next: AgentConfiguration) async throws {
    try await self.appliers.apply(next)
  }

  /// When the agent's own SVID will be renewed.
  package var nextRotation: Date? { self.identities.lifecycle(of: self.identities.pinnedIdentity)?.renewAt }

  /// Loads the CA, issues the first SVID and binds the socket (or takes the one systemd passed).
  /// When this returns, the socket accepts connections and, with a local CA, the first
  /// certificate is in the cache.
  ///
  /// - Parameters:
  ///   - loader: re-reads the configuration on SIGHUP; without it there is no reload.
  ///   - logging: the process's logging, whose level reload changes.
  ///   - clock: drives every timer of the agent.
  ///   - now: the wall clock that dates certificates and deadlines.
  package static func build(
    configuration: AgentConfiguration,
    loader: ConfigurationLoader? = nil,
    logging: AgentLogging? = nil,
    logger: Logger,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    clock: ContinuousClock = ContinuousClock(),
    now: @escaping @Sendable () -> Date = { Date() }
  ) async throws -> Agent {
    let metrics = PrometheusMetrics()
    let context = AgentContext(
      configuration: configuration, counters: AgentCounters(recorder: metrics), clock: clock, now: now,
      logger: logger, fileWatch: FileWatchService(logger: logger))
    let authority = try Self.authority(for: configuration, logger: logger)
    let streams = StreamRegistry()
    let identities = Self.identityTable(context)
    let onDemand = Self.onDemand(context, authority: authority, table: identities)
    let jwtKeys = try Self.jwtKeys(context, authority: authority, table: identities)
    let fetchedJWTSVIDs = Self.fetchedJWTSVIDs(context, authority: authority, table: identities)
    let ca = try Self.caServices(
      context, authority: authority, table: identities, streams: streams, onDemand: onDemand, jwtKeys: jwtKeys)
    let crl = Self.crlFollowing(context, ca: ca, table: identities)
    let files = Self.fileSecrets(context, table: identities)
    let federation = try Self.federation(context, table: identities)
    let sessionTicketKeys = try Self.sessionTicketKeys(context, table: identities)
    let supervisor = Self.supervisor(context, table: identities, issuer: ca.issuer)
    let admission = try await Self.admission(context, table: identities, remoteCA: ca.isRemote)
    if !ca.isRemote {
      // The local CA answers at once: the first certificate exists before the socket does.
      try await supervisor.performDueWork(for: configuration.identity)
    }
    let workloadAPI = Self.workloadAPI(context, jwtKeys: jwtKeys, fetched: fetchedJWTSVIDs, streams: streams)
    let jwtSVIDs = Self.jwtSVIDTokens(context, workloadAPI: workloadAPI)
    // A remote CA is asked by the supervisor as soon as the services run (its connection is one
    // of them); the agent serves once it answers, and retries with backoff while it does not.
    let sdsService = SecretDiscoveryService(
      leases: admission, counters: context.counters, registry: streams, logger: logger,
      spiffeValidator: configuration.spiffeValidator, onDemand: onDemand, files: files, jwtSVIDs: jwtSVIDs
    ).serving(sessionTicketKeys: sessionTicketKeys)
    let socket = try Self.sdsSocket(context, service: sdsService, workloadAPI: workloadAPI, environment: environment)
    let workloadAPISocket = try Self.workloadAPISocket(context, service: workloadAPI, callers: admission)
    let credentialSockets = try Self.credentialSockets(context, service: sdsService)
    let adminListening = Milestone()
    let admin = Self.adminServer(
      context, metrics: metrics, identities: identities, streams: streams, ca: ca, federation: federation,
      onDemand: onDemand, listening: adminListening)
    let notifier = SystemdNotifier(environment: environment)
    let systemd = Self.systemd(
      context, notifier: notifier, socketPath: socket.path, identities: identities, environment: environment)
    let appliers = Self.reloadAppliers(
      context, logging: logging, ca: ca, federation: federation, files: files, admission: admission,
      identities: identities, onDemand: onDemand)
    let reload = await Self.reloadService(context, loader: loader, appliers: appliers, notifier: notifier)
    // In dependency order; each says whether its end stops the agent.
    let services: [ServiceGroupConfiguration.ServiceConfiguration?] = [
      // First, so that it stops last: every watcher below follows its files through it.
      .auxiliary(context.fileWatch),
      ca.authority.remote.map { .auxiliary($0) },
      fetchedJWTSVIDs.map { .auxiliary($0) },
      .essential(supervisor),
      ca.rootRotation.map { .essential($0) },
      ca.revocation.map { .essential($0) },
      // Always: a reload may add trust bundles to watch.
      .auxiliary(federation),
      ca.caRoots.map { .auxiliary($0) },
      ca.operatorCAFiles.map { .auxiliary($0) },
      onDemand.map { .essential($0) },
      crl.map { .essential($0.follower) },
      crl?.file.map { .auxiliary($0) },
      .auxiliary(files),
      sessionTicketKeys.map { .auxiliary($0) },
      jwtSVIDs.map { .essential($0) },
      .essential(socket.server),
      workloadAPISocket.map { .essential($0.server) },
      credentialSockets.map { .essential($0) },
      admin.map { .auxiliary($0) },
      .auxiliary(systemd),
      reload.map { .auxiliary($0) },
    ]
    return Agent(
      configuration: configuration,
      socketPath: socket.path,
      counters: context.counters,
      streams: streams,
      identities: identities,
      admission: admission,
      sdsService: sdsService,
      services: services.compactMap { $0 },
      appliers: appliers,
      logger: logger,
      adminListening: adminListening,
      sdsListening: socket.listening,
      workloadAPISocketPath: workloadAPI == nil ? nil : workloadAPISocket?.path ?? socket.path
    )
  }

  /// Longest a graceful shutdown may take before the remaining work is cancelled; well under
  /// systemd's default stop timeout (90 s) and the unit's `TimeoutStopSec`.
  package static let shutdownLimit = Duration.seconds(10)

  /// The service group that runs every service, shutting down gracefully on these signals.
  package func makeServiceGroup(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
    var configuration = ServiceGroupConfiguration(
      services: self.services,
      gracefulShutdownSignals: gracefulShutdownSignals,
      logger: self.logger
    )
    configuration.maximumGracefulShutdownDuration = Self.shutdownLimit
    return ServiceGroup(configuration: configuration)
  }

  /// Runs every service until SIGTERM or SIGINT, then shuts down gracefully.
  package func run() async throws {
    try await self.makeServiceGroup().run()
  }
}

extension ServiceGroupConfiguration.ServiceConfiguration {
  /// A service the agent cannot run without: when it ends, the agent shuts down.
  package static func essential(_ service: any Service) -> Self {
    .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)
  }

  /// A service that may finish early (no systemd, no admin endpoint) without stopping the agent.
  package static func auxiliary(_ service: any Service) -> Self {
    .init(service: service, successTerminationBehavior: .ignore)
  }
}
