import Foundation
import SDSAgentCore

/// Revocation in fetch mode: the CA's CRLs followed from the distribution point in the agent's
/// own certificate and from the `ca-crl` file, and served like the embedded CA's own lists.
/// With an operator CA that signs through an intermediate, the same follower reads the
/// `ca-root-crl` file: the operator root's list, served with the intermediate's own.
extension Agent {
  struct CRLFollowing {
    let follower: CRLFollower<ContinuousClock>
    /// Watches the `ca-crl` file.
    let file: CRLFileWatcher<ContinuousClock>?
  }

  static func crlFollowing(_ context: AgentContext, ca: CAServices, table: IdentityTable) -> CRLFollowing? {
    if let embedded = ca.authority.embedded, let path = context.configuration.caRootCRL {
      return Self.operatorRootCRL(context, ca: embedded, table: table, path: path)
    }
    guard ca.following != nil, let istio = context.configuration.istioCA else { return nil }
    let follower = CRLFollower(
      host: table, fetcher: HTTPCRLFetcher(clock: context.clock), clock: context.clock, now: context.now,
      refresh: istio.crlRefresh, counters: context.counters, logger: context.logger)
    let file = istio.crlFile.map { path in
      CRLFileWatcher(path: path, follower: follower, watching: context.fileWatch, clock: context.clock)
    }
    return CRLFollowing(follower: follower, file: file)
  }

  /// The operator root's CRL file, followed (verified, never older, never past nextUpdate) into
  /// the SPIFFE validator's contexts beside the intermediate's own list.
  static func operatorRootCRL(
    _ context: AgentContext, ca: EmbeddedCA, table: IdentityTable, path: String
  ) -> CRLFollowing {
    let follower = CRLFollower(
      host: OperatorChainCRLHost(table: table, ca: ca), fetcher: HTTPCRLFetcher(clock: context.clock),
      clock: context.clock, now: context.now, refresh: .seconds(60), counters: context.counters,
      logger: context.logger)
    return CRLFollowing(
      follower: follower,
      file: CRLFileWatcher(path: path, follower: follower, watching: context.fileWatch, clock: context.clock))
  }
}
