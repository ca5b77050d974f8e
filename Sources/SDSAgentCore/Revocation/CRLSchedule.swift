import Foundation

/// When a CA signs its CRL again: at once when the revocations changed, and otherwise halfway
/// through the held CRL's validity, so that a fresh CRL reaches every Envoy long before the held
/// one's nextUpdate (after which Envoy refuses every handshake).
package struct CRLSchedule: Sendable, Equatable {
  package let validity: Duration

  package init(validity: Duration) {
    self.validity = validity
  }

  package enum Decision: Sendable, Equatable {
    case signNow
    case sign(at: Date)
  }

  package func decision(held: CertificateRevocationList?, revocationsChanged: Bool, now: Date) -> Decision {
    guard let held, !revocationsChanged else { return .signNow }
    let due = held.thisUpdate.addingTimeInterval(held.nextUpdate.timeIntervalSince(held.thisUpdate) / 2)
    return due > now ? .sign(at: due) : .signNow
  }

  /// thisUpdate and nextUpdate for a CRL signed now.
  package func window(now: Date) -> (thisUpdate: Date, nextUpdate: Date) {
    (now, now.addingTimeInterval(self.validity.seconds))
  }
}
