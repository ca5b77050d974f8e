import Logging

/// The issuance ledger as the signer sees it: each certificate is written to the store before
/// its answer leaves. Certificates signed while a write is in progress are written together by
/// the next one, in one transaction (`GroupCommitter`). While the store cannot be written (the
/// datastore is down), records are held in memory in signing order, at most `capacity`, and
/// written ahead of any new one when it is back (at the next record, or at `flush()` from the
/// retry loop); past the capacity signing is refused (a batch that does not fit is refused
/// whole). Held records are lost if the process dies before they are written.
package actor IssuanceLedger: LedgerRecorder {
  private let store: any IssuanceLedgerStore
  private let capacity: Int
  private let logger: Logger
  private var held: [LedgerChain.Issuance] = []
  private var isFlushing = false
  private let batches = GroupCommitter<LedgerChain.Issuance, LedgerUnavailable>()

  package init(store: any IssuanceLedgerStore, capacity: Int = 100_000, logger: Logger) {
    self.store = store
    self.capacity = capacity
    self.logger = logger
  }

  /// Rows signed but not yet written.
  package var heldCount: Int { self.held.count }

  package nonisolated func record(_ issuance: LedgerChain.Issuance) async throws(LedgerUnavailable) {
    try await self.batches.commit(issuance) { issuances in await self.write(issuances) }
  }

  private func write(_ issuances: [LedgerChain.Issuance]) async -> Result<Void, LedgerUnavailable> {
    let caughtUp = self.held.isEmpty ? true : await self.flush()
    if caughtUp {
      do {
        try await self.store.append(issuances)
        return .success(())
      } catch {
        self.logger.warning(
          "issuance ledger: cannot write; holding the row until the datastore is back",
          metadata: [
            "serial": "\(issuances.map(\.serial).joined(separator: ","))",
            "held": "\(self.held.count + issuances.count)", "error": "\(error)",
          ])
      }
    }
    guard self.held.count + issuances.count <= self.capacity else {
      return .failure(LedgerUnavailable(held: self.held.count))
    }
    self.held += issuances
    return .success(())
  }

  /// Writes the held rows, oldest first; true when none is left.
  @discardableResult
  package func flush() async -> Bool {
    guard !self.held.isEmpty else { return true }
    guard !self.isFlushing else { return false }
    self.isFlushing = true
    defer { self.isFlushing = false }
    let batch = self.held
    do {
      try await self.store.append(batch)
    } catch {
      return false
    }
    self.held.removeFirst(batch.count)
    self.logger.notice("issuance ledger: held rows written", metadata: ["rows": "\(batch.count)"])
    return self.held.isEmpty
  }

  /// Retries the held rows every `interval` until cancelled.
  package func retryHeldRows<C: Clock<Duration>>(every interval: Duration, clock: C) async {
    while !Task.isCancelled {
      do {
        try await clock.sleep(for: interval)
      } catch {
        return
      }
      await self.flush()
    }
  }
}
