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

  /// The Workload API service, unless `workload-api` is false; it signs JWT-SVIDs with a key
  /// of its own beside the CA's, except in fetch mode, whose CA signs no JWTs. Its calls are
  /// listed in `streams`.
  static func workloadAPI(_ context: AgentContext, streams: StreamRegistry) throws -> WorkloadAPIService? {
    let configuration = context.configuration
    guard configuration.workloadAPI.enabled else { return nil }
    var jwt: JWTSVIDIssuer?
    if configuration.istioCA == nil {
      let key = try JWTKeyStore.loadOrGenerate(stateDirectory: configuration.stateDirectory)
      jwt = JWTSVIDIssuer(
        signer: JWTSVIDSigner(key: key), trustDomain: TrustDomainName(of: configuration.identity),
        ttl: configuration.workloadAPI.jwtSVIDTTL)
    }
    return WorkloadAPIService(
      logger: context.logger, counters: context.counters, jwt: jwt, registry: streams, now: context.now)
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
