import Foundation
import SDSAgentCore

/// The SPIFFE Workload API: served on the SDS socket unless turned off, and on a socket of its
/// own when one is configured; the same callers, leases and limits as SDS.
extension Agent {
  struct WorkloadAPISocket {
    let server: SDSSocketServer
    let path: String
    /// Reached once the transport listens, with the socket's backlog set.
    let listening: Milestone
  }

  /// The Workload API service, unless `workload-api` is false; it signs JWT-SVIDs with `jwtKeys`,
  /// or gets them from the CA in fetch mode (`fetched`). Its calls are listed in `streams`.
  static func workloadAPI(
    _ context: AgentContext, jwtKeys: JWTKeyRing?, fetched: FetchedJWTSVIDIssuer<ContinuousClock>? = nil,
    streams: StreamRegistry
  ) -> WorkloadAPIService? {
    guard context.configuration.workloadAPI.enabled else { return nil }
    let jwt: (any JWTSVIDSource)? = jwtKeys.map(JWTSVIDIssuer.init(keys:)) ?? fetched
    return WorkloadAPIService(
      logger: context.logger, counters: context.counters, jwt: jwt,
      registry: streams,
      now: context.now)
  }

  /// The keys that sign JWT-SVIDs, beside the CA's, published in the node's JWT bundles and
  /// rotating with the embedded CA's own root; none when the Workload API is off or in fetch
  /// mode, whose CA signs no JWTs.
  static func jwtKeys(_ context: AgentContext, authority: Authority, table: IdentityTable) throws -> JWTKeyRing? {
    let configuration = context.configuration
    guard configuration.workloadAPI.enabled, case .embedded(_, let rotation, _) = authority else { return nil }
    let files = JWTKeyFiles(stateDirectory: configuration.stateDirectory)
    let ttl = configuration.workloadAPI.jwtSVIDTTL
    let keys = try files.load(rootPhase: rotation?.phase, ttl: ttl, now: context.now())
    return JWTKeyRing(
      keys, trustDomain: TrustDomainName(of: configuration.identity), ttl: ttl, store: files,
      publishingTo: table.node, logger: context.logger)
  }

  /// The `jwt-svid:<audience>` SDS secrets, where the agent signs JWT-SVIDs: the same signer as
  /// the Workload API's.
  static func jwtSVIDTokens(
    _ context: AgentContext, workloadAPI: WorkloadAPIService?
  ) -> JWTSVIDTokens<ContinuousClock>? {
    guard let issuer = workloadAPI?.jwt else { return nil }
    return JWTSVIDTokens(issuer: issuer, clock: context.clock, now: context.now, logger: context.logger)
  }

  /// The socket services that serve `service`: none when it is off.
  static func workloadAPISocketServices(_ service: WorkloadAPIService?) -> [any GRPCSocketService] {
    service.map { [WorkloadAPISocketService(service: $0)] } ?? []
  }

  /// The Workload API's own socket, if one is configured: it serves nothing else.
  static func workloadAPISocket(
    _ context: AgentContext, service: WorkloadAPIService?, callers: any SecretLeaseProvider
  ) throws -> WorkloadAPISocket? {
    let configuration = context.configuration
    guard let service, let path = configuration.workloadAPI.socketPath else { return nil }
    let logger = context.logger
    let listener = try UnixSocketListener.bind(
      path: path, mode: configuration.workloadAPI.socketMode, group: configuration.workloadAPI.socketGroup)
    let descriptor = listener.descriptor
    let listening = Milestone()
    let server = SDSSocketServer(
      descriptor: descriptor, services: Self.workloadAPISocketServices(service), callers: callers,
      peerCredentials: configuration.nodeAgent.identification.usesPeer, limits: SDSServerLimits(), logger: logger,
      onListening: {
        UnixSocketListener.restoreBacklog(of: descriptor, logger: logger)
        listening.reach()
      },
      onStop: { listener.removeSocketFile() })
    return WorkloadAPISocket(server: server, path: path, listening: listening)
  }
}
