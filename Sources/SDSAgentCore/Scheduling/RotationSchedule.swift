import Foundation

/// When to renew an SVID: at `ratio` of its lifetime, moved by up to `jitter` of the lifetime
/// either way so that many agents do not renew in lockstep. A pure function of the SVID's
/// validity, the current time and a jitter sample.
package struct RotationSchedule: Sendable, Equatable {
  package var ratio: Double
  package var jitter: Double

  package init(ratio: Double = 0.5, jitter: Double = 0.1) {
    precondition((0.0..<1.0).contains(ratio) && ratio > 0, "ratio must be in (0, 1)")
    precondition(jitter >= 0 && jitter < min(ratio, 1 - ratio), "jitter must stay inside the lifetime")
    self.ratio = ratio
    self.jitter = jitter
  }

  package enum Decision: Sendable, Equatable {
    /// Keep serving; renew at this time.
    case renew(at: Date)
    /// The renewal time has passed: renew now.
    case renewNow
    /// The SVID is expired and must not be served.
    case expired
  }

  /// - Parameters:
  ///   - issuedAt: when the SVID was issued (its usable lifetime starts here, not at a
  ///     backdated `notBefore`).
  ///   - notAfter: when it expires.
  ///   - jitterSample: a value in `-1...1` (random in production, fixed in tests).
  package func decision(issuedAt: Date, notAfter: Date, now: Date, jitterSample: Double) -> Decision {
    guard now < notAfter else { return .expired }
    let renewal = self.renewalTime(issuedAt: issuedAt, notAfter: notAfter, jitterSample: jitterSample)
    return now < renewal ? .renew(at: renewal) : .renewNow
  }

  package func renewalTime(issuedAt: Date, notAfter: Date, jitterSample: Double) -> Date {
    let lifetime = notAfter.timeIntervalSince(issuedAt)
    let sample = max(-1, min(1, jitterSample))
    return issuedAt.addingTimeInterval(lifetime * (self.ratio + self.jitter * sample))
  }
}
