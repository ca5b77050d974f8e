import Foundation
import SDSAgentCore
import Synchronization

/// The embedded CA's revocation ledger, kept in the state directory: a certificate is recorded on
/// disk before it is served, a revocation is on disk before it is answered, and each CRL number
/// is on disk before the list carrying it is handed out. A failed write changes nothing.
package final class RevocationStore: RevocationRecord {
  private let files: RevocationFiles
  private let ledger: Mutex<RevocationLedger>

  /// Loads what the state directory holds; throws an error naming the file that cannot be read.
  package init(files: RevocationFiles, schedule: CRLSchedule, now: Date) throws(AgentError) {
    self.files = files
    let ledger = RevocationLedger(
      issued: try files.loadIssued(now: now), revocations: try files.loadRevocations(), schedule: schedule)
    self.ledger = Mutex(ledger)
  }

  /// The store of `stateDirectory`, made (0700) if there is none: the operator's CA needs none
  /// otherwise.
  package static func open(stateDirectory: String, validity: Duration) throws(AgentError) -> RevocationStore {
    try SecureFile.ensurePrivateDirectory(stateDirectory)
    return try RevocationStore(
      files: RevocationFiles(stateDirectory: stateDirectory), schedule: CRLSchedule(validity: validity), now: Date())
  }

  package var revocations: Revocations { self.ledger.withLock { $0.revocations } }
  package var issued: IssuedCertificates { self.ledger.withLock { $0.issued } }

  package func record(_ certificate: IssuedCertificate) throws(CertificateAuthorityError) {
    try self.ledger.withLock { ledger throws(CertificateAuthorityError) in
      do {
        try self.files.append(certificate)
      } catch {
        throw CertificateAuthorityError(
          .signingFailed, "the certificate \(certificate.serial) cannot be recorded, so it is not served", cause: error)
      }
      ledger.record(certificate, at: Date())
    }
  }

  /// Revokes what `request` names; the revocation is on disk when this returns `.revoked`.
  package func revoke(
    _ request: Revocations.Request, reason: RevocationReason, at now: Date
  ) throws(AgentError) -> Revocations.Outcome {
    try self.ledger.withLock { ledger throws(AgentError) in
      var next = ledger
      let outcome = next.revoke(request, reason: reason, at: now)
      if case .revoked = outcome { try self.files.saveRevocations(next.revocations) }
      ledger = next
      return outcome
    }
  }

  /// The list of each issuer (signed now where due) and when the next signing is due; expired
  /// records are forgotten first.
  package func lists(
    of issuers: [CRLIssuer], at now: Date
  ) throws(AgentError) -> (lists: [CertificateRevocationList], nextSigning: Date) {
    try self.ledger.withLock { ledger throws(AgentError) in
      var next = ledger
      next.prune(at: now)
      let signed: (lists: [CertificateRevocationList], nextSigning: Date)
      do {
        signed = try next.lists(of: issuers, at: now)
      } catch {
        throw AgentError(.caFiles, "cannot sign the revocation list: \(error)")
      }
      if next.revocations != ledger.revocations { try self.files.saveRevocations(next.revocations) }
      if next.issued.count < ledger.issued.count / 2 { try self.files.rewriteIssued(next.issued) }
      ledger = next
      return signed
    }
  }
}
