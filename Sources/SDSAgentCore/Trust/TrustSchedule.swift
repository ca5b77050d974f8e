import Foundation
import Synchronization

/// The trust's deadlines: changes of the served trust due at a time, each under a key saying what
/// it is for (a new change replaces the one of its key), several at once. It has no timer of its
/// own: in the agent the identity supervisor's timer reads `nextDeadline` and makes the changes
/// due, so one timer drives every deadline, of identities and of trust alike.
package final class TrustSchedule: Sendable {
  /// What a scheduled change is for.
  package enum Key: Hashable, Sendable, CustomStringConvertible {
    /// The operator's previous root leaving the own bundle once no leaf it signed can be valid.
    case operatorRetirement
    /// A federated trust domain's root expiring: it leaves that domain's bundle.
    case federatedExpiry(TrustDomainName)
    /// A root of fetch mode's `ca-root` file expiring: it leaves the own bundle.
    case caRootExpiry
    /// A root the followed CA stopped sending leaving the own bundle once its leaves expired.
    case fetchedRetention

    package var description: String {
      switch self {
      case .operatorRetirement: "operator_retirement"
      case .federatedExpiry(let domain): "federated_expiry(\(domain))"
      case .caRootExpiry: "ca_root_expiry"
      case .fetchedRetention: "fetched_retention"
      }
    }
  }

  /// A change due at `at`. `perform` makes it, given the time it is made at, and returns what
  /// the log says once it is served (`nil`: nothing to say, or it said it itself).
  package struct Change: Sendable {
    package let at: Date
    package let perform: @Sendable (Date) throws(CertificateAuthorityError) -> String?
  }

  private let changes = Mutex<[Key: Change]>([:])
  /// Signalled when a change is scheduled, so the timer reads the deadline again.
  private let wake: WakeSignal

  package init(wake: WakeSignal) {
    self.wake = wake
  }

  /// Has `perform` run at `at`, in place of the change scheduled under `key` before.
  package func schedule(
    _ key: Key, at: Date, _ perform: @escaping @Sendable (Date) throws(CertificateAuthorityError) -> String?
  ) {
    let sooner = self.changes.withLock { changes in
      defer { changes[key] = Change(at: at, perform: perform) }
      return changes[key].map { at < $0.at } ?? true
    }
    // A later deadline needs no wake-up: the timer, woken early, reads the deadline again.
    if sooner { self.wake.signal() }
  }

  /// Drops the change scheduled under `key`, if any.
  package func cancel(_ key: Key) {
    _ = self.changes.withLock { $0.removeValue(forKey: key) }
  }

  /// When the change under `key` is due, if one is scheduled.
  package func deadline(of key: Key) -> Date? {
    self.changes.withLock { $0[key]?.at }
  }

  /// The keys scheduled now, by deadline.
  package var scheduled: [(key: Key, at: Date)] {
    self.changes.withLock { changes in
      changes.map { (key: $0.key, at: $0.value.at) }.sorted { $0.at < $1.at }
    }
  }

  /// The earliest deadline, if any change is scheduled.
  package var nextDeadline: Date? {
    self.changes.withLock { $0.values.map(\.at).min() }
  }

  /// Takes the changes due at `now`, earliest first; they are no longer scheduled. A change made
  /// may schedule its key again (the next root to expire).
  package func takeDue(now: Date) -> [(key: Key, change: Change)] {
    self.changes.withLock { changes in
      let due = changes.filter { now >= $0.value.at }.map { (key: $0.key, change: $0.value) }
      for (key, _) in due { changes[key] = nil }
      return due.sorted { $0.change.at < $1.change.at }
    }
  }
}
