import Foundation

/// When a CA signs its CRL again: at once when the revocations changed, and otherwise halfway
/// through the held CRL's validity, so that a fresh CRL reaches every Envoy long before the held
/// one's nextUpdate (after which Envoy refuses every handshake).
public struct CRLSchedule: Sendable, Equatable {
  public let validity: Duration

  public init(validity: Duration) {
    self.validity = validity
  }

  public enum Decision: Sendable, Equatable {
    case signNow
    case sign(at: Date)
  }

  public func decision(held: CertificateRevocationList?, revocationsChanged: Bool, now: Date) -> Decision {
    guard let held, !revocationsChanged else { return .signNow }
    let due = held.thisUpdate.addingTimeInterval(held.nextUpdate.timeIntervalSince(held.thisUpdate) / 2)
    return due > now ? .sign(at: due) : .signNow
  }

  /// thisUpdate and nextUpdate for a CRL signed now.
  public func window(now: Date) -> (thisUpdate: Date, nextUpdate: Date) {
    (now, now.addingTimeInterval(self.validity.seconds))
  }
}
