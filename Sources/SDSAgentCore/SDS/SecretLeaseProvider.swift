/// What the SDS service needs to serve a caller: a lease on its secrets, or a refusal.
package protocol SecretLeaseProvider: Sendable {
  func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease

  /// A lease without suspending, when the caller is identified at once and its secrets are
  /// issued; nil when only `lease(for:)` can tell.
  func leaseNow(for evidence: CallerEvidence?) throws(CallerRefusal) -> SecretLease?
}

extension SecretLeaseProvider {
  package func leaseNow(for evidence: CallerEvidence?) throws(CallerRefusal) -> SecretLease? { nil }
}
