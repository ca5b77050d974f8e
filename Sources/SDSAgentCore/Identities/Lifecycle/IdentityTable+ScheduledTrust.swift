import Foundation

/// A change of the own trust bundle due at a time, made on the identity supervisor's timer: the
/// operator's previous root leaving the bundle once no leaf it signed can still be valid.
struct ScheduledTrustChange: Sendable {
  let at: Date
  /// Makes the change (on the CA) and returns the bundle served from then on.
  let bundle: @Sendable () -> TrustBundle
  /// What the log says once the change is served.
  let note: String
}

extension IdentityTable {
  /// When the scheduled change of the own trust bundle is due, if one is.
  package var scheduledTrustChange: Date? { self.trust.withLock { $0.scheduled?.at } }

  /// Has the supervisor serve `bundle()` as the own trust domain's bundle at `at`, in place of any
  /// change scheduled before.
  package func scheduleTrustChange(at: Date, note: String, _ bundle: @escaping @Sendable () -> TrustBundle) {
    self.trust.withLock { $0.scheduled = ScheduledTrustChange(at: at, bundle: bundle, note: note) }
    self.wake.signal()
  }

  /// Drops the scheduled change, if any.
  package func cancelTrustChange() {
    self.trust.withLock { $0.scheduled = nil }
  }

  /// Serves the scheduled change if it is due at `now`; returns its note once it is served.
  func performDueTrustChange(now: Date) throws(CertificateAuthorityError) -> String? {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) -> String? in
      guard let change = installation.scheduled, now >= change.at else { return nil }
      installation.scheduled = nil
      installation.own = change.bundle()
      try self.pushTrust(installation)
      return change.note
    }
  }
}
