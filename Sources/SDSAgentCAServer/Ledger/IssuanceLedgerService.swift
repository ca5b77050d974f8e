import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle

/// Keeps the issuance ledger of `ca serve --datastore`: writes the rows held while the datastore
/// was unreachable as soon as it is back, and prunes rows whose certificates expired more than
/// `retention` ago, behind a checkpoint row that keeps the chain verifiable.
package struct IssuanceLedgerService: Service {
  package let ledger: IssuanceLedger
  let store: PostgresLedgerStore
  let replica: String
  let logger: Logger

  /// How long a row stays after its certificate expired.
  package static let retention: TimeInterval = 90 * 86400
  static let retryInterval = Duration.seconds(2)
  static let pruneInterval = Duration.seconds(3600)

  package func run() async throws {
    await withDiscardingTaskGroup { tasks in
      tasks.addTask { await self.ledger.retryHeldRows(every: Self.retryInterval, clock: ContinuousClock()) }
      tasks.addTask { await self.pruneEveryHour() }
      try? await gracefulShutdown()
      tasks.cancelAll()
    }
    await self.store.close()
  }

  private func pruneEveryHour() async {
    let clock = ContinuousClock()
    while !Task.isCancelled {
      do {
        let removed = try await self.store.prune(now: Date(), retention: Self.retention, replica: self.replica)
        if removed > 0 { self.logger.notice("issuance ledger: pruned", metadata: ["rows": "\(removed)"]) }
      } catch {
        self.logger.warning("issuance ledger: pruning failed; trying again in an hour", metadata: ["error": "\(error)"])
      }
      do {
        try await clock.sleep(for: Self.pruneInterval)
      } catch {
        return
      }
    }
  }
}

extension CAServer {
  /// The issuance ledger in the shared datastore, written over a connection of its own.
  static func ledger(_ datastore: CADatastore, logger: Logger) -> IssuanceLedgerService {
    let store = PostgresLedgerStore(logger: logger) { try await datastore.connect() }
    return IssuanceLedgerService(
      ledger: IssuanceLedger(store: store, logger: logger), store: store, replica: datastore.replicaName,
      logger: logger)
  }
}
