import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Replaces the operator's signing CA on reload without breaking peers: the new CA signs at once
/// and every identity and on-demand certificate is re-issued, while the old root stays in the
/// trust bundle until no leaf it signed can still be valid, then leaves it (and that is pushed).
package final class OperatorCAReplacement<C: Clock>: Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  private let ca: EmbeddedCA
  private let table: IdentityTable
  private let onDemand: (any ReissuedLeaves)?
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  /// When the previous root leaves the bundle.
  private let retireAt = Mutex<Date?>(nil)
  private let wake = WakeSignal()

  package init(
    ca: EmbeddedCA, table: IdentityTable, onDemand: (any ReissuedLeaves)? = nil, clock: C,
    now: @escaping @Sendable () -> Date, logger: Logger
  ) {
    self.ca = ca
    self.table = table
    self.onDemand = onDemand
    self.clock = clock
    self.now = now
    self.logger = logger
  }

  package var description: String { "OperatorCAReplacement" }

  /// When the root replaced last leaves the bundle, if one is still trusted.
  package var previousRootRetiresAt: Date? { self.retireAt.withLock { $0 } }

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
    self.retireAt.withLock { $0 = keeps ? nil : lastOldLeafExpiry }
    self.logger.notice(
      "the operator's CA changed: the new CA signs from now on; re-issuing every identity",
      metadata: [
        "subject": "\(material.certificate.subject)",
        "old_root_retires_at": "\(keeps ? "-" : lastOldLeafExpiry.formatted(.iso8601))",
      ])
    self.wake.signal()
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

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      self.retireAt.withLock { $0 }.map {
        self.clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now()))))
      }
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer {
        guard let retireAt = self.retireAt.withLock({ $0 }), self.now() >= retireAt else { continue }
        let bundle = self.ca.install(EmbeddedCA.Roots(signing: self.ca.roots.signing))
        self.retireAt.withLock { $0 = nil }
        do {
          try self.table.installTrustBundle(bundle)
          self.logger.notice("the operator's previous root left the trust bundle")
        } catch {
          self.logger.error("cannot serve the trust bundle", metadata: ["error": "\(error)"])
        }
      }
    }
  }
}
