/// What the SDS service needs to serve a caller: a lease on its secrets, or a refusal.
public protocol SecretLeaseProvider: Sendable {
  func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease
}
