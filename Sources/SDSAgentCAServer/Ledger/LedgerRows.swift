import Foundation
import Logging
import NIOCore
import PostgresNIO
import SDSAgentCore

/// The ledger's table and its rows as `LedgerEntry` values.
package enum LedgerRows {
  /// The migration that adds the ledger (appended to `DatastoreSchema.migrations`).
  package static let createTable = """
    CREATE TABLE sds_agent_issuance_ledger (
      sequence BIGINT PRIMARY KEY,
      kind TEXT NOT NULL CHECK (kind IN ('issuance', 'checkpoint')),
      serial TEXT NOT NULL,
      spiffe_id TEXT NOT NULL,
      caller TEXT NOT NULL,
      impersonated_by TEXT,
      replica TEXT NOT NULL,
      not_before TIMESTAMPTZ NOT NULL,
      not_after TIMESTAMPTZ NOT NULL,
      pruned_through BIGINT,
      pruned_hash BYTEA,
      previous_hash BYTEA NOT NULL,
      hash BYTEA NOT NULL)
    """
  package static let createIdentityIndex =
    "CREATE INDEX sds_agent_issuance_ledger_spiffe_id ON sds_agent_issuance_ledger (spiffe_id, sequence)"

  private static let columns =
    "sequence, kind, serial, spiffe_id, caller, impersonated_by, replica, not_before, not_after, pruned_through, "
    + "pruned_hash, previous_hash, hash"

  static func head(_ connection: PostgresConnection, logger: Logger) async throws -> LedgerEntry? {
    try await self.select(
      connection,
      PostgresQuery(unsafeSQL: "SELECT \(Self.columns) FROM sds_agent_issuance_ledger ORDER BY sequence DESC LIMIT 1"),
      logger: logger
    ).first
  }

  /// The rows from the start up to the first whose certificate is still within `cutoff`, and
  /// the newest row (pruning needs the head to chain its checkpoint).
  static func prunable(_ connection: PostgresConnection, cutoff: Date, logger: Logger) async throws -> [LedgerEntry] {
    let prefix = try await self.select(
      connection,
      PostgresQuery(
        unsafeSQL: """
          SELECT \(Self.columns) FROM sds_agent_issuance_ledger WHERE sequence < COALESCE(
            (SELECT min(sequence) FROM sds_agent_issuance_ledger WHERE kind = 'issuance' AND not_after > $1),
            (SELECT max(sequence) FROM sds_agent_issuance_ledger)) ORDER BY sequence
          """, binds: try Self.binds(cutoff)), logger: logger)
    guard let head = try await self.head(connection, logger: logger) else { return [] }
    return prefix.last?.sequence == head.sequence ? prefix : prefix + [head]
  }

  /// Every row (or one identity's) from `since` on, in sequence order.
  package static func list(
    _ connection: PostgresConnection, identity: String?, since: Date?, logger: Logger
  ) async throws -> [LedgerEntry] {
    var sql = "SELECT \(Self.columns) FROM sds_agent_issuance_ledger WHERE true"
    var binds = PostgresBindings()
    if let identity {
      binds.append(identity)
      sql += " AND spiffe_id = $\(binds.count)"
    }
    if let since {
      binds.append(since)
      sql += " AND not_before >= $\(binds.count)"
    }
    return try await self.select(
      connection, PostgresQuery(unsafeSQL: sql + " ORDER BY sequence", binds: binds), logger: logger)
  }

  static func insert(_ row: LedgerEntry, _ connection: PostgresConnection, logger: Logger) async throws {
    let notBefore = Date(timeIntervalSince1970: row.notBefore.timeIntervalSince1970.rounded(.down))
    let notAfter = Date(timeIntervalSince1970: row.notAfter.timeIntervalSince1970.rounded(.down))
    let prunedHash = row.prunedHash.map { ByteBuffer(bytes: $0) }
    try await connection.query(
      """
      INSERT INTO sds_agent_issuance_ledger (\(unescaped: Self.columns)) VALUES (\(row.sequence), \(row.kind.rawValue),
        \(row.serial), \(row.spiffeID), \(row.caller), \(row.impersonatedBy), \(row.replica), \(notBefore), \(notAfter),
        \(row.prunedThrough), \(prunedHash), \(ByteBuffer(bytes: row.previousHash)), \(ByteBuffer(bytes: row.hash)))
      """, logger: logger)
  }

  private static func binds(_ date: Date) throws -> PostgresBindings {
    var binds = PostgresBindings()
    binds.append(date)
    return binds
  }

  private static func select(
    _ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger
  ) async throws -> [LedgerEntry] {
    var entries: [LedgerEntry] = []
    let rows = try await connection.query(query, logger: logger)
    for try await row in rows {
      let cells = row.makeRandomAccess()
      let kind = try cells[1].decode(String.self)
      entries.append(
        LedgerEntry(
          sequence: try cells[0].decode(Int64.self), kind: LedgerEntry.Kind(rawValue: kind) ?? .issuance,
          serial: try cells[2].decode(String.self), spiffeID: try cells[3].decode(String.self),
          caller: try cells[4].decode(String.self), impersonatedBy: try cells[5].decode(String?.self),
          replica: try cells[6].decode(String.self), notBefore: try cells[7].decode(Date.self),
          notAfter: try cells[8].decode(Date.self), prunedThrough: try cells[9].decode(Int64?.self),
          prunedHash: try cells[10].decode(ByteBuffer?.self).map { Array($0.readableBytesView) },
          previousHash: Array(try cells[11].decode(ByteBuffer.self).readableBytesView),
          hash: Array(try cells[12].decode(ByteBuffer.self).readableBytesView)))
    }
    return entries
  }
}
