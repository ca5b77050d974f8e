import Foundation
import SDSAgentCore

/// Revocation in fetch mode: the CA's CRLs followed from the distribution point in the agent's
/// own certificate and from the `ca-crl` file, and served like the embedded CA's own lists.
extension Agent {
  struct CRLFollowing {
    let follower: CRLFollower<ContinuousClock>
    /// Watches the `ca-crl` file.
    let file: CRLFileWatcher<ContinuousClock>?
  }

  static func crlFollowing(_ context: AgentContext, ca: CAServices, table: IdentityTable) -> CRLFollowing? {
    guard ca.following != nil, let istio = context.configuration.istioCA else { return nil }
    let follower = CRLFollower(
      host: table, fetcher: HTTPCRLFetcher(clock: context.clock), clock: context.clock, now: context.now,
      refresh: istio.crlRefresh, counters: context.counters, logger: context.logger)
    let file = istio.crlFile.map { path in
      CRLFileWatcher(path: path, follower: follower, watching: context.fileWatch, clock: context.clock)
    }
    return CRLFollowing(follower: follower, file: file)
  }
}
