import Foundation
import Logging
import NIOCore
import PostgresNIO
import SDSAgentCore
import Synchronization

/// The issuance ledger in the datastore (`sds_agent_issuance_ledger`): rows are appended under a
/// transaction-scoped advisory lock, so every replica extends the one chain, each row sealed
/// after the head it read in the same transaction. One connection, opened again after a failure.
package actor PostgresLedgerStore: IssuanceLedgerStore {
  /// Serialises appends (and pruning) across replicas; distinct from the CA's own lock.
  package static let appendLockKey: Int64 = 0x5344_5341_4C45_4447  // "SDSALEDG"

  /// How long one transaction may take before the connection is given up and the rows held, by
  /// default.
  package static let defaultOperationLimit = Duration.seconds(3)

  private let operationLimit: Duration

  private let connect: @Sendable () async throws -> PostgresConnection
  private let logger: Logger
  private var connection: PostgresConnection?
  /// One transaction at a time on the one connection: the actor lets a second call in at every
  /// `await`, and two transactions interleaved on one connection would be one.
  private var isBusy = false
  private var waiting: [CheckedContinuation<Void, Never>] = []

  package init(
    logger: Logger, operationLimit: Duration = defaultOperationLimit,
    connect: @escaping @Sendable () async throws -> PostgresConnection
  ) {
    self.connect = connect
    self.logger = logger
    self.operationLimit = operationLimit
  }

  package func append(_ issuances: [LedgerChain.Issuance]) async throws {
    try await self.withConnection { connection, logger in
      try await connection.withTransaction(logger: logger) { transaction in
        try await transaction.query("SELECT pg_advisory_xact_lock(\(Self.appendLockKey))", logger: logger)
        var head = try await LedgerRows.head(transaction, logger: logger)
        for issuance in issuances {
          let row = LedgerChain.sealing(issuance, after: head)
          try await LedgerRows.insert(row, transaction, logger: logger)
          head = row
        }
      }
    }
  }

  /// Removes the rows whose certificates expired `retention` ago, behind a checkpoint row.
  /// Returns how many rows went.
  package func prune(now: Date, retention: TimeInterval, replica: String) async throws -> Int {
    try await self.withConnection { connection, logger in
      try await connection.withTransaction(logger: logger) { transaction in
        try await transaction.query("SELECT pg_advisory_xact_lock(\(Self.appendLockKey))", logger: logger)
        let rows = try await LedgerRows.prunable(
          transaction, cutoff: now.addingTimeInterval(-retention), logger: logger)
        guard let pruned = LedgerChain.pruning(rows, now: now, retention: retention, replica: replica) else { return 0 }
        try await LedgerRows.insert(pruned.checkpoint, transaction, logger: logger)
        try await transaction.query(
          "DELETE FROM sds_agent_issuance_ledger WHERE sequence <= \(pruned.removedThrough)", logger: logger)
        return rows.filter { $0.sequence <= pruned.removedThrough }.count
      }
    }
  }

  private func withConnection<Result: Sendable>(
    _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> Result
  ) async throws -> Result {
    await self.takeTurn()
    defer { self.endTurn() }
    let connection: PostgresConnection
    if let open = self.connection, !open.isClosed {
      connection = open
    } else {
      // Bounded too: a server shutting down may accept the connection and never answer it.
      let connect = self.connect
      let opened = ResultBox<PostgresConnection>()
      do {
        try await Self.answered(within: self.operationLimit) {
          let connection = try await connect()
          // One opened after it was given up is closed here: nobody else holds it.
          if !opened.set(connection) { try? await connection.close() }
        }
      } catch {
        if let late = opened.abandon() { try? await late.close() }
        throw error
      }
      connection = try opened.take()
      self.connection = connection
    }
    do {
      // Only the datastore's own time counts (not the wait for this store's turn): a datastore
      // that accepts a connection but never answers (PostgreSQL shutting down) is given up on.
      let logger = self.logger
      let outcome = ResultBox<Result>()
      try await Self.answered(within: self.operationLimit) {
        outcome.set(try await body(connection, logger))
      }
      return try outcome.take()
    } catch {
      self.connection = nil
      try? await connection.close()
      throw error
    }
  }

  /// Closes its connection, after the transaction in progress; the next append opens another.
  package func close() async {
    await self.takeTurn()
    defer { self.endTurn() }
    if let connection = self.connection {
      self.connection = nil
      try? await connection.close()
    }
  }

  /// `operation` within `limit`, or `LedgerStoreStalled`: the stalled operation is left to end
  /// with its connection.
  private static func answered(
    within limit: Duration, _ operation: @escaping @Sendable () async throws -> Void
  ) async throws {
    do {
      try await withAbandoningTimeLimit(limit, on: ContinuousClock(), operation)
    } catch is TimeLimitPassed {
      throw LedgerStoreStalled()
    }
  }

  private func takeTurn() async {
    guard self.isBusy else {
      self.isBusy = true
      return
    }
    await withCheckedContinuation { self.waiting.append($0) }
  }

  private func endTurn() {
    if self.waiting.isEmpty {
      self.isBusy = false
    } else {
      self.waiting.removeFirst().resume()
    }
  }
}

/// The value an operation run elsewhere produced.
private final class ResultBox<Value: Sendable>: Sendable {
  private let state = Mutex<(value: Value?, abandoned: Bool)>((nil, false))

  /// Keeps `value`; false when the box was abandoned first.
  @discardableResult
  func set(_ value: Value) -> Bool {
    self.state.withLock { state in
      guard !state.abandoned else { return false }
      state.value = value
      return true
    }
  }

  /// Gives the box up; the value already in it, if any.
  func abandon() -> Value? {
    self.state.withLock { state in
      state.abandoned = true
      defer { state.value = nil }
      return state.value
    }
  }

  func take() throws -> Value {
    guard let value = self.state.withLock({ $0.value }) else { throw LedgerStoreStalled() }
    return value
  }
}
