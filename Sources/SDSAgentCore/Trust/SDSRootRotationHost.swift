import Foundation
import X509

/// The agent's side of a root rotation: the identity table serves the bundle and is re-issued at
/// the switch with the on-demand certificates, and the switch waits for every SDS stream holding
/// the bundle to acknowledge it.
package struct SDSRootRotationHost: RootRotationHost {
  package let table: IdentityTable
  package let streams: StreamRegistry
  /// On-demand server certificates, if the agent mints them.
  package let onDemand: (any ReissuedLeaves)?

  package init(table: IdentityTable, streams: StreamRegistry, onDemand: (any ReissuedLeaves)? = nil) {
    self.table = table
    self.streams = streams
    self.onDemand = onDemand
  }

  package func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
    try self.table.installTrustBundle(bundle)
  }

  package func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream] {
    self.streams.streamsNotAcknowledging(root)
  }

  package var trustBundleAcknowledged: WakeSignal? { self.streams.trustBundleAcknowledged }

  /// Leaves of the old root: those served now, any issued up to now with today's lifetime, and
  /// the on-demand certificates.
  package func lastLeafExpiry(now: Date) -> Date {
    let served = self.table.snapshot().compactMap { $0.served.svid?.notAfter }
    let onDemand = self.onDemand?.lastLeafExpiry(now: now)
    return (served + [now.addingTimeInterval(self.table.template.ttl.seconds)] + [onDemand].compactMap { $0 }).max()!
  }

  /// Every identity and every on-demand certificate; one that failed is renewed as usual, with
  /// backoff, before its certificate expires.
  package func reissueAll() async -> [(subject: String, error: any Error)] {
    let identities = await self.table.reissueAll().map { (subject: $0.0.description, error: $0.1) }
    return identities + (await self.onDemand?.reissueAll() ?? [])
  }

  /// Acknowledgements are seen: the switch waits for them instead.
  package var minimumOverlap: MinimumOverlap? { nil }
}
