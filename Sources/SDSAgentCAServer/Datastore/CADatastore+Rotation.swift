import Foundation
import PostgresNIO
import SDSAgentCore

/// A root rotation's steps as datastore transactions. Every replica's supervisor takes each
/// time-driven step when it is due; under the advisory lock one does it and the others find it
/// done (each statement is conditional on the phase it leaves), so a replica that dies mid-step
/// leaves the whole step to the next one.
extension CADatastore {
  /// Runs `body` on a connection of its own, closed after it (reads, no transaction).
  package func reading<Result: Sendable>(
    _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
  ) async throws -> Result {
    let connection = try await self.connect()
    do {
      let result = try await body(connection)
      try? await connection.close()
      return result
    } catch {
      try? await connection.close()
      throw DatastoreError(.query, "the datastore \(self.address) cannot be read", cause: PostgresFailure(error))
    }
  }

  /// Records a prepared root and its rotation, unless one is in progress (another replica's).
  package func prepare(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {
    do {
      let record = try SharedCAState.encoded(rotation)
      try self.lockedWaiting([
        """
        INSERT INTO sds_agent_root_rotation (id, phase, next_serial, record, updated_by)
        VALUES (1, 'prepared', \(rotation.nextRootSerial), \(record), \(self.replicaName))
        """,
        "DELETE FROM sds_agent_ca_roots WHERE role = 'next'",
        try self.insertion(next, role: "next", imported: false),
        self.notification,
      ])
    } catch let error as PSQLError where error.serverInfo?[.sqlState] == Self.uniqueViolation {
      throw RootRotationError(
        .inProgress, "a root rotation is already in progress (started by another replica); see /debug/trust")
    } catch {
      throw RootRotationError(.storage, "the prepare could not be recorded in the datastore", cause: Self.shown(error))
    }
  }

  /// The prepared root signs; nothing is done if another replica switched already.
  package func switchRoot(_ rotation: RootRotation) throws(RootRotationError) {
    let serial = rotation.nextRootSerial
    do {
      let record = try SharedCAState.encoded(rotation)
      try self.lockedWaiting([
        """
        DELETE FROM sds_agent_ca_roots WHERE role = 'previous' AND EXISTS (
          SELECT 1 FROM sds_agent_root_rotation WHERE phase = 'prepared' AND next_serial = \(serial))
        """,
        """
        UPDATE sds_agent_ca_roots SET role = 'previous' WHERE role = 'signing' AND EXISTS (
          SELECT 1 FROM sds_agent_root_rotation WHERE phase = 'prepared' AND next_serial = \(serial))
        """,
        "UPDATE sds_agent_ca_roots SET role = 'signing' WHERE role = 'next' AND serial = \(serial)",
        """
        UPDATE sds_agent_root_rotation SET phase = 'switched', record = \(record), updated_by = \(self.replicaName),
          updated_at = now() WHERE phase = 'prepared' AND next_serial = \(serial)
        """,
        self.notification,
      ])
    } catch {
      throw RootRotationError(.storage, "the switch could not be recorded in the datastore", cause: Self.shown(error))
    }
  }

  /// The old root leaves; nothing is done if another replica retired it already.
  package func retire() throws(RootRotationError) {
    do {
      try self.lockedWaiting([
        "DELETE FROM sds_agent_ca_roots WHERE role = 'previous'",
        "DELETE FROM sds_agent_root_rotation WHERE phase = 'switched'",
        self.notification,
      ])
    } catch {
      throw RootRotationError(
        .storage, "the retirement could not be recorded in the datastore", cause: Self.shown(error))
    }
  }

  static let uniqueViolation = "23505"

  /// Runs `queries` in one transaction holding `DatastoreSchema.advisoryLockKey`, on a connection
  /// of its own, entirely on an event loop, and waits for it: the rotation supervisor's store and
  /// the revocation record are synchronous. Refused on an event loop, where waiting would stall it.
  /// A failure closes the connection, which rolls the transaction back.
  @discardableResult
  func lockedWaiting(_ queries: [PostgresQuery]) throws -> [PostgresQueryResult] {
    try self.lockedWaiting(queries) { results in ([], results) }
  }

  /// The same, with a second round decided from the first one's results inside the transaction.
  func lockedWaiting<Value: Sendable>(
    _ queries: [PostgresQuery],
    then decide: @escaping @Sendable ([PostgresQueryResult]) throws -> (queries: [PostgresQuery], value: Value)
  ) throws -> Value {
    guard MultiThreadedEventLoopGroup.currentEventLoop == nil else {
      throw DatastoreError(.query, "the datastore cannot be waited for on an event loop")
    }
    let eventLoop = PostgresConnection.defaultEventLoopGroup.any()
    let logger = self.logger
    let begin: [PostgresQuery] = ["BEGIN"] + DatastoreSchema.transactionStart
    let done = PostgresConnection.connect(
      on: eventLoop, configuration: try self.address.configuration(), id: 2, logger: logger
    ).flatMap { connection in
      @Sendable func run(_ queries: [PostgresQuery]) -> EventLoopFuture<[PostgresQueryResult]> {
        var chain = eventLoop.makeSucceededFuture([PostgresQueryResult]())
        for query in queries {
          chain = chain.flatMap { results in connection.query(query, logger: logger).map { results + [$0] } }
        }
        return chain
      }
      return run(begin + queries).flatMapThrowing { results in
        try decide(Array(results.dropFirst(begin.count)))
      }.flatMap { decided in
        run(decided.queries + ["COMMIT"]).map { _ in decided.value }
      }.flatMap { value in
        connection.close().recover { _ in }.map { value }
      }.flatMapError { error in
        connection.close().recover { _ in }.flatMapThrowing { throw error }
      }
    }
    return try done.wait()
  }

  /// Tells every replica listening to re-read; delivered when the transaction commits.
  var notification: PostgresQuery {
    "SELECT pg_notify(\(DatastoreSchema.notificationChannel), \(self.replicaName))"
  }

  private static func shown(_ error: any Error) -> any Error {
    error is PSQLError ? PostgresFailure(error) : error
  }
}
