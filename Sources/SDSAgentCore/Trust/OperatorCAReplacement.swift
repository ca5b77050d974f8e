import Foundation
import Logging

/// Replaces the operator's signing CA without breaking peers: the new CA signs at once and every
/// identity and on-demand certificate is re-issued, while the old root stays in the trust bundle
/// until no leaf it signed can still be valid, then leaves it (and that is pushed). The
/// retirement is the `.operatorRetirement` change of the table's trust schedule, made on the
/// identity supervisor's timer.
package final class OperatorCAReplacement: Sendable {
  private let ca: EmbeddedCA
  private let table: IdentityTable
  private let onDemand: (any ReissuedLeaves)?
  private let now: @Sendable () -> Date
  private let logger: Logger

  package init(
    ca: EmbeddedCA, table: IdentityTable, onDemand: (any ReissuedLeaves)? = nil, now: @escaping @Sendable () -> Date,
    logger: Logger
  ) {
    self.ca = ca
    self.table = table
    self.onDemand = onDemand
    self.now = now
    self.logger = logger
  }

  /// When the root replaced last leaves the bundle, if one is still trusted.
  package var previousRootRetiresAt: Date? { self.table.scheduledTrustChange }

  /// Signs with `material` from now on and re-issues every identity; the current root stays
  /// trusted until the leaves it signed have expired. Nothing happens if `material` is the CA
  /// already signing.
  package func replace(with material: CAMaterial) async throws(CertificateAuthorityError) {
    let current = self.ca.roots
    guard
      material.certificate != current.signing.certificate || material.chainAfterLeaf != current.signing.chainAfterLeaf
    else { return }
    let now = self.now()
    let oldRoots = current.signing.trustBundle.roots
    let keeps = oldRoots.allSatisfy { material.trustBundle.roots.contains($0) }
    // Leaves of the old CA: those served now, any issued up to now with today's lifetime, and
    // the on-demand certificates.
    let served = self.table.snapshot().compactMap { $0.served.svid?.notAfter }
    let onDemand = self.onDemand?.lastLeafExpiry(now: now)
    let lastOldLeafExpiry =
      (served + [now.addingTimeInterval(self.table.template.ttl.seconds)] + [onDemand].compactMap { $0 }).max()!
    let bundle = self.ca.install(
      EmbeddedCA.Roots(signing: material, previous: keeps ? nil : oldRoots.first))
    try self.table.installTrustBundle(bundle)
    if keeps {
      self.table.cancelTrustChange()
    } else {
      let retiring = oldRoots.first
      self.table.scheduleTrustChange(
        at: lastOldLeafExpiry, note: "the operator's previous root left the trust bundle"
      ) { [ca] in
        // Made outside the table's lock: a replacement since then retires its own previous root.
        let roots = ca.roots
        return roots.previous == retiring ? ca.install(EmbeddedCA.Roots(signing: roots.signing)) : roots.trustBundle
      }
    }
    self.logger.notice(
      "the operator's CA changed: the new CA signs from now on; re-issuing every identity",
      metadata: [
        "subject": "\(material.certificate.subject)",
        "old_root_retires_at": "\(keeps ? "-" : lastOldLeafExpiry.formatted(.iso8601))",
      ])
    for (identity, error) in await self.table.reissueAll() {
      self.logger.error(
        "re-issuing from the new CA failed; the renewal will retry",
        metadata: ["identity": "\(identity)", "error": "\(error)"])
    }
    for (name, error) in await self.onDemand?.reissueAll() ?? [] {
      self.logger.error(
        "re-issuing an on-demand certificate from the new CA failed; retrying in 5s",
        metadata: ["name": "\(name)", "error": "\(error)"])
    }
  }
}
