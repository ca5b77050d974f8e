import Foundation
import PostgresNIO
import SDSAgentCore

/// Revocations shared through the datastore: the certificates each replica signed
/// (`sds_agent_issued`, uploaded by the follower) and the one revocation document.
extension CADatastore {
  /// Revokes what `request` names against every replica's certificates, in one transaction under
  /// the advisory lock, this replica's not-yet-uploaded rows (`pending`) written first; returns the
  /// outcome and the shared revocations after it. Waits on an event loop (the record is synchronous).
  package func revoke(
    _ request: Revocations.Request, reason: RevocationReason, at now: Date, pending: [IssuedCertificate]
  ) throws -> (outcome: Revocations.Outcome, revocations: Revocations) {
    let selection: PostgresQuery
    switch request {
    case .serial(let serial):
      selection = "SELECT serial, identity, not_after FROM sds_agent_issued WHERE serial = \(serial.description)"
    case .identity(let identity):
      selection = "SELECT serial, identity, not_after FROM sds_agent_issued WHERE identity = \(identity.description)"
    }
    let replica = self.replicaName
    let notification = self.notification
    return try self.lockedWaiting(
      pending.map(self.issuedInsertion) + [selection, "SELECT document FROM sds_agent_revocations WHERE id = 1"]
    ) { results in
      var issued = IssuedCertificates()
      for row in results[results.count - 2].rows {
        let (serial, identity, notAfter) = try row.decode((String, String, Date).self)
        guard let serial = CertificateSerial(hex: serial), let identity = try? SPIFFEID(parsing: identity) else {
          continue
        }
        issued.record(IssuedCertificate(serial: serial, identity: identity, notAfter: notAfter), at: now)
      }
      var revocations = Revocations()
      if let row = results[results.count - 1].rows.first {
        revocations = try Self.revocations(from: try row.decode(String.self))
      }
      revocations.prune(at: now)
      let outcome = revocations.revoke(request, reason: reason, issued: issued, at: now)
      guard case .revoked = outcome else { return ([], (outcome, revocations)) }
      let document = try Self.document(revocations)
      let write: PostgresQuery = """
        INSERT INTO sds_agent_revocations (id, document, updated_by) VALUES (1, \(document), \(replica))
        ON CONFLICT (id) DO UPDATE SET document = EXCLUDED.document, updated_by = EXCLUDED.updated_by,
          updated_at = now()
        """
      return ([write, notification], (outcome, revocations))
    }
  }

  /// Writes this replica's signed certificates; rows already there are kept.
  package func upload(_ rows: [IssuedCertificate], _ connection: PostgresConnection) async throws {
    for row in rows { try await connection.query(self.issuedInsertion(row), logger: self.logger) }
  }

  /// The shared revocation document, if any.
  func revocationDocument(_ connection: PostgresConnection) async throws -> String? {
    let rows = try await connection.query(
      "SELECT document FROM sds_agent_revocations WHERE id = 1", logger: self.logger)
    var document: String?
    for try await (text) in rows.decode(String.self) { document = text }
    return document
  }

  func issuedInsertion(_ row: IssuedCertificate) -> PostgresQuery {
    """
    INSERT INTO sds_agent_issued (serial, identity, not_after, replica)
    VALUES (\(row.serial.description), \(row.identity.description), \(row.notAfter), \(self.replicaName))
    ON CONFLICT (serial) DO NOTHING
    """
  }

  static func revocations(from document: String) throws -> Revocations {
    do {
      return try JSONDecoder().decode(Revocations.self, from: Data(document.utf8))
    } catch {
      throw DatastoreError(.query, "the revocation document in the datastore cannot be read", cause: error)
    }
  }

  static func document(_ revocations: Revocations) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(revocations), as: UTF8.self)
  }
}
