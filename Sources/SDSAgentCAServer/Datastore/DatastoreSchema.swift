import PostgresNIO

/// The datastore's tables, as numbered migrations applied in order, each recorded in
/// `sds_agent_schema` in the transaction that applies it. A later feature (the issuance ledger)
/// is one more migration at the end; a migration is never edited once released.
package enum DatastoreSchema {
  package struct Migration: Sendable {
    package let version: Int
    package let statements: [String]

    package init(version: Int, statements: [String]) {
      self.version = version
      self.statements = statements
    }
  }

  /// What to do with a datastore at `current` (nil: no schema table yet).
  package enum Plan: Equatable, Sendable {
    case upToDate
    /// Apply these versions, in order.
    case migrate([Int])
    /// Written by a newer binary: refused, never downgraded.
    case newer(found: Int, known: Int)
  }

  /// Serialises changes to the shared CA: replicas that start together (one migrates and creates
  /// the CA, the others then load it) and the steps of a root rotation (one replica at a time).
  package static let advisoryLockKey: Int64 = 0x5344_5341_4745_4E54  // "SDSAGENT"

  /// The first statements of every transaction on the shared CA: bounded waits, then the lock.
  static var transactionStart: [PostgresQuery] {
    [
      "SET LOCAL lock_timeout = '10s'", "SET LOCAL statement_timeout = '10s'",
      "SELECT pg_advisory_xact_lock(\(Self.advisoryLockKey))",
    ]
  }

  /// Where every change to the shared CA is announced; replicas re-read on each notification.
  package static let notificationChannel = "sds_agent_ca"

  package static let migrations: [Migration] = [
    Migration(
      version: 1,
      statements: [
        """
        CREATE TABLE IF NOT EXISTS sds_agent_key_encryption (
          id INT PRIMARY KEY CHECK (id = 1),
          verifier BYTEA NOT NULL,
          created_by TEXT NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
        """
        CREATE TABLE sds_agent_ca_roots (
          serial TEXT PRIMARY KEY,
          role TEXT NOT NULL CHECK (role IN ('signing', 'next', 'previous')),
          certificate_pem TEXT NOT NULL,
          chain_pem TEXT NOT NULL DEFAULT '',
          key_sealed BYTEA,
          imported BOOLEAN NOT NULL DEFAULT false,
          created_by TEXT NOT NULL,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
        "CREATE UNIQUE INDEX sds_agent_ca_roots_one_per_role ON sds_agent_ca_roots (role)",
        """
        CREATE TABLE sds_agent_root_rotation (
          id INT PRIMARY KEY CHECK (id = 1),
          phase TEXT NOT NULL CHECK (phase IN ('prepared', 'switched')),
          next_serial TEXT NOT NULL,
          record TEXT NOT NULL,
          updated_by TEXT NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
      ]),
    // Revocations shared by the replicas: what each signed (to resolve a revocation by identity or
    // serial on any replica) and the one revocation document (`Revocations` as JSON).
    Migration(
      version: 2,
      statements: [
        """
        CREATE TABLE sds_agent_issued (
          serial TEXT PRIMARY KEY,
          identity TEXT NOT NULL,
          not_after TIMESTAMPTZ NOT NULL,
          replica TEXT NOT NULL)
        """,
        "CREATE INDEX sds_agent_issued_identity ON sds_agent_issued (identity, not_after)",
        """
        CREATE TABLE sds_agent_revocations (
          id INT PRIMARY KEY CHECK (id = 1),
          document TEXT NOT NULL,
          updated_by TEXT NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
      ]),
    // The issuance ledger: every certificate signed, hash-chained (`LedgerChain`).
    Migration(version: 3, statements: [LedgerRows.createTable, LedgerRows.createIdentityIndex]),
  ]

  package static var latestVersion: Int { self.migrations.last?.version ?? 0 }

  package static func plan(current: Int?, migrations: [Migration] = Self.migrations) -> Plan {
    let known = migrations.last?.version ?? 0
    let current = current ?? 0
    if current > known { return .newer(found: current, known: known) }
    let pending = migrations.map(\.version).filter { $0 > current }
    return pending.isEmpty ? .upToDate : .migrate(pending)
  }

  static let createVersionTable = """
    CREATE TABLE IF NOT EXISTS sds_agent_schema (
      version INT PRIMARY KEY,
      applied_by TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
    """
}
