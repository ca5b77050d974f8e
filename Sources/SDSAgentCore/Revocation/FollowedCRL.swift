import Foundation
import X509

/// A CRL the agent follows but does not sign (fetched from a distribution point, or a
/// `--ca-crl` file), as a value: which CRL it holds, whether a new one replaces it, whether it may
/// still be served, and when to fetch again.
///
/// Envoy fails every handshake against a CRL past its nextUpdate, so an expired CRL is never
/// served: past nextUpdate the agent serves no CRL of that issuer (revoked certificates are
/// accepted again until a fresh CRL arrives) and says so loudly. Failing open is the choice: a
/// CA's CRL endpoint being down must not take every mTLS connection of the node down with it.
package struct FollowedCRL: Sendable {
  package private(set) var held: CertificateRevocationList?

  package init() {}

  package enum Outcome: Sendable, Equatable {
    /// The CRL replaced the one held (or was the first).
    case accepted(number: Int)
    /// The same CRL number again: nothing changed.
    case unchanged
    /// No certificate of `issuers` signed it.
    case unverified
    /// Its number is below the held one's: an older CRL never replaces a newer one.
    case older(number: Int, held: Int)
    /// It is past its nextUpdate already.
    case expired(nextUpdate: Date)
  }

  /// Offers a CRL read from its source. `issuers` are the certificates that may sign it (the
  /// trust bundle's roots and the CA's intermediates).
  package mutating func offer(_ crl: CertificateRevocationList, issuers: [Certificate], now: Date) -> Outcome {
    guard issuers.contains(where: { crl.isSigned(by: $0) }) else { return .unverified }
    guard crl.nextUpdate > now else { return .expired(nextUpdate: crl.nextUpdate) }
    if let held = self.held {
      if crl.number < held.number { return .older(number: crl.number, held: held.number) }
      if crl.number == held.number && crl.derBytes == held.derBytes { return .unchanged }
    }
    self.held = crl
    return .accepted(number: crl.number)
  }

  /// The CRL to serve now: the held one until its nextUpdate, then none.
  package func servable(at now: Date) -> CertificateRevocationList? {
    guard let held, held.nextUpdate > now else { return nil }
    return held
  }

  /// When to fetch again: halfway from thisUpdate to nextUpdate, moved by up to a tenth of that
  /// interval either way (`jitterSample` in -1...1) so a fleet does not fetch in lockstep; and at
  /// once when nothing is held or the held CRL is past that point.
  package func refetch(at now: Date, jitterSample: Double, retry: Duration) -> Date {
    guard let held else { return now.addingTimeInterval(retry.seconds) }
    let interval = held.nextUpdate.timeIntervalSince(held.thisUpdate)
    let sample = max(-1, min(1, jitterSample))
    let due = held.thisUpdate.addingTimeInterval(interval * (0.5 + 0.1 * sample))
    return due > now
      ? due : now.addingTimeInterval(min(retry.seconds, max(1, held.nextUpdate.timeIntervalSince(now) / 4)))
  }
}
