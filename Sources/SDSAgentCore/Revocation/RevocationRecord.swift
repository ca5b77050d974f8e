import Foundation

/// A CA's revocation ledger as the revocation service uses it: durable, so that what it answers
/// is on disk first (the agent's `RevocationStore`).
package protocol RevocationRecord: IssuanceRecord {
  /// The certificates the record knows, unexpired or not yet pruned.
  var issued: IssuedCertificates { get }
  /// Revokes what `request` names; on `.revoked` the revocation is durable.
  func revoke(_ request: Revocations.Request, reason: RevocationReason, at now: Date) throws -> Revocations.Outcome
  /// The list of each issuer (signed now where due) and when the next signing is due.
  func lists(of issuers: [CRLIssuer], at now: Date) throws -> (lists: [CertificateRevocationList], nextSigning: Date)
}
