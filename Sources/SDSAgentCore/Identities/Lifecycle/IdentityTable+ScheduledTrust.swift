import Foundation

/// The own trust bundle's scheduled change: the operator's previous root leaving it once no leaf
/// it signed can still be valid, the `.operatorRetirement` change of the trust schedule.
extension IdentityTable {
  /// When the scheduled change of the own trust bundle is due, if one is.
  package var scheduledTrustChange: Date? { self.trustSchedule.deadline(of: .operatorRetirement) }

  /// Has the supervisor serve `bundle()` as the own trust domain's bundle at `at`, in place of any
  /// change scheduled before.
  package func scheduleTrustChange(at: Date, note: String, _ bundle: @escaping @Sendable () -> TrustBundle) {
    self.trustSchedule.schedule(.operatorRetirement, at: at) { [weak self] _ throws(CertificateAuthorityError) in
      guard let self else { return nil }
      try self.installTrustBundle(bundle())
      return note
    }
  }

  /// Drops the scheduled change, if any.
  package func cancelTrustChange() {
    self.trustSchedule.cancel(.operatorRetirement)
  }
}
