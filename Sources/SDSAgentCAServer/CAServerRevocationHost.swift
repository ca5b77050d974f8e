import SDSAgentCore
import Synchronization

/// `ca serve` as the revocation service's host: it keeps the lists for `GET /ca/crl`. It holds no
/// identity to re-issue: the agents holding a revoked certificate renew on their own schedule.
package final class CAServerRevocationHost: RevocationHost {
  private let lists = Mutex<[CertificateRevocationList]>([])

  package init() {}

  package func installRevocationLists(_ lists: [CertificateRevocationList]) {
    self.lists.withLock { $0 = lists }
  }

  package var servedRevocationLists: [CertificateRevocationList] { self.lists.withLock { $0 } }

  package func reissue(_ identity: SPIFFEID) async -> Bool { false }
}
