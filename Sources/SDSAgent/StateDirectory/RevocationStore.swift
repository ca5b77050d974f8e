import Foundation
import SDSAgentCore
import Synchronization

/// The embedded CA's revocation ledger, kept in the state directory: a certificate is recorded on
/// disk before it is served, a revocation is on disk before it is answered, and each CRL number
/// is on disk before the list carrying it is handed out. A failed write changes nothing.
///
/// Certificates signed at the same time are recorded together: one write and one `fsync` for
/// all the rows that arrived while the previous flush was in progress (`GroupCommitter`).
package final class RevocationStore: RevocationRecord {
  private let files: RevocationFiles
  private let ledger: Mutex<RevocationLedger>
  private let issuance = GroupCommitter<IssuedCertificate, AgentError>()

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

  package func record(_ certificate: IssuedCertificate) async throws(CertificateAuthorityError) {
    do throws(AgentError) {
      try await self.issuance.commit(certificate) { rows in self.write(rows) }
    } catch {
      throw CertificateAuthorityError(
        .signingFailed, "the certificate \(certificate.serial) cannot be recorded, so it is not served", cause: error)
    }
  }

  /// Appends `rows` to the file, flushes them and adds them to the ledger, on the leading
  /// caller's thread. It blocks that one thread of the concurrency pool for the `fsync`; the
  /// other callers of the batch are suspended, not blocked, so the pool goes on serving calls,
  /// whose rows make the next batch. (Handing the flush to NIO's blocking thread pool was
  /// measured: more futex wake-ups per signing and no larger batches on this machine.)
  private func write(_ rows: [IssuedCertificate]) -> Result<Void, AgentError> {
    Result { () throws(AgentError) in
      try self.ledger.withLock { ledger throws(AgentError) in
        try self.files.append(rows)
        let now = Date()
        for row in rows { ledger.record(row, at: now) }
      }
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
