import Foundation
import Logging
import PostgresNIO
import SDSAgentCore
import Synchronization

/// `ca serve`'s revocation record on a datastore. What this replica signs is kept in memory and
/// uploaded by the follower within a second (signing never waits for the datastore, so it goes on
/// while PostgreSQL is down; the rows wait here); a revocation is resolved against every
/// replica's rows and recorded in the shared document in one transaction; the lists are signed
/// here from the shared document, which the follower adopts on every change.
package final class DatastoreRevocationRecord: RevocationRecord {
  let datastore: CADatastore
  private let ledger: Mutex<RevocationLedger>
  /// Signed here, not yet in the datastore.
  private let pending = Mutex<[IssuedCertificate]>([])
  /// Rows kept while the datastore is away; beyond this the oldest are dropped.
  static let pendingLimit = 100_000

  init(datastore: CADatastore, revocations: Revocations, schedule: CRLSchedule) {
    self.datastore = datastore
    self.ledger = Mutex(RevocationLedger(revocations: revocations, schedule: schedule))
  }

  /// The record of `datastore`, with the shared revocations of the moment.
  static func load(_ datastore: CADatastore, validity: Duration) async throws -> DatastoreRevocationRecord {
    let document = try await datastore.reading { try await datastore.revocationDocument($0) }
    let revocations = try document.map(CADatastore.revocations(from:)) ?? Revocations()
    return DatastoreRevocationRecord(
      datastore: datastore, revocations: revocations, schedule: CRLSchedule(validity: validity))
  }

  package var revocations: Revocations { self.ledger.withLock { $0.revocations } }
  package var issued: IssuedCertificates { self.ledger.withLock { $0.issued } }

  package func record(_ certificate: IssuedCertificate) throws(CertificateAuthorityError) {
    self.ledger.withLock { $0.record(certificate, at: Date()) }
    self.pending.withLock { pending in
      pending.append(certificate)
      if pending.count > Self.pendingLimit { pending.removeFirst(pending.count - Self.pendingLimit) }
    }
  }

  package func revoke(
    _ request: Revocations.Request, reason: RevocationReason, at now: Date
  ) throws -> Revocations.Outcome {
    let pending = self.pending.withLock { $0 }
    let (outcome, shared) = try self.datastore.revoke(request, reason: reason, at: now, pending: pending)
    self.uploaded(pending.count)
    self.ledger.withLock { $0.adopt(shared) }
    return outcome
  }

  package func lists(
    of issuers: [CRLIssuer], at now: Date
  ) throws -> (lists: [CertificateRevocationList], nextSigning: Date) {
    try self.ledger.withLock { ledger in
      ledger.prune(at: now)
      return try ledger.lists(of: issuers, at: now)
    }
  }

  /// Takes the shared document; true when it changed what the lists hold.
  func adopt(_ shared: Revocations) -> Bool {
    self.ledger.withLock { ledger in
      let before = ledger.revocations.entries
      ledger.adopt(shared)
      return ledger.revocations.entries != before
    }
  }

  /// Uploads what was signed here since the last upload; kept for the next one if it fails.
  func upload(_ connection: PostgresConnection) async throws {
    let rows = self.pending.withLock { $0 }
    try await self.datastore.upload(rows, connection)
    self.uploaded(rows.count)
  }

  private func uploaded(_ count: Int) {
    self.pending.withLock { $0.removeFirst(min(count, $0.count)) }
  }
}
