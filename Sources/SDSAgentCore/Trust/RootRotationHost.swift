import Foundation
import X509

/// What a root rotation needs from the service whose embedded CA it rotates: the agent serving
/// SDS (`SDSRootRotationHost`) or `ca serve` (whose clients are node agents).
package protocol RootRotationHost: Sendable {
  /// Serves `bundle` to whoever trusts the CA: at the prepare (both roots) and at the
  /// retirement (the new root alone).
  func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError)

  /// The open streams that hold the trust bundle but have not acknowledged one with `root`:
  /// the switch waits for them, at most until its deadline. Empty for a host that cannot see
  /// acknowledgements.
  func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream]

  /// Signalled when a stream acknowledged a trust bundle; `nil` for a host without streams.
  var trustBundleAcknowledged: WakeSignal? { get }

  /// The latest `notAfter` a leaf signed by the signing root up to `now` can have: the old
  /// root is retired once it has passed.
  func lastLeafExpiry(now: Date) -> Date

  /// Re-issues, from the root that signs now, everything issued from the old one; returns what
  /// failed, each error saying what happens next.
  func reissueAll() async -> [(subject: String, error: any Error)]

  /// The shortest overlap a rotation may have here, if there is one.
  var minimumOverlap: MinimumOverlap? { get }
}

/// Leaves the embedded CA signs outside the identity table, the on-demand server certificates:
/// a change of signing CA re-issues them, and the old root stays trusted until they have expired.
package protocol ReissuedLeaves: Sendable {
  /// The latest `notAfter` a leaf issued up to `now` can have; `nil` when none is held.
  func lastLeafExpiry(now: Date) -> Date?
  /// Re-issues every leaf from the CA that signs now; returns what failed.
  func reissueAll() async -> [(subject: String, error: any Error)]
}
