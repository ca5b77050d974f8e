import Foundation
import X509

/// The agent's side of a root rotation: the identity table serves the bundle and is re-issued at
/// the switch, and the switch waits for every SDS stream holding the bundle to acknowledge it.
public struct SDSRootRotationHost: RootRotationHost {
  public let table: IdentityTable
  public let streams: StreamRegistry

  public init(table: IdentityTable, streams: StreamRegistry) {
    self.table = table
    self.streams = streams
  }

  public func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
    try self.table.installTrustBundle(bundle)
  }

  public func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream] {
    self.streams.streamsNotAcknowledging(root)
  }

  public var trustBundleAcknowledged: WakeSignal? { self.streams.trustBundleAcknowledged }

  /// Leaves of the old root: those served now, and any issued up to now with today's lifetime.
  public func lastLeafExpiry(now: Date) -> Date {
    let served = self.table.snapshot().compactMap { $0.served.svid?.notAfter }
    return (served + [now.addingTimeInterval(self.table.template.ttl.seconds)]).max()!
  }

  /// An identity that failed is renewed as usual, with backoff, before its certificate expires.
  public func reissueAll() async -> [(subject: String, error: any Error)] {
    await self.table.reissueAll().map { (subject: $0.0.description, error: $0.1) }
  }

  /// Acknowledgements are seen: the switch waits for them instead.
  public var minimumOverlap: MinimumOverlap? { nil }
}
