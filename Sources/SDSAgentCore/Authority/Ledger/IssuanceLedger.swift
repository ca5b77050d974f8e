import Logging

/// The issuance ledger as the signer sees it: each certificate is written to the store before
/// its answer leaves. While the store cannot be written (the datastore is down), records are held
/// in memory in signing order, at most `capacity`, and written ahead of any new one when it is
/// back (at the next record, or at `flush()` from the retry loop); past the capacity signing is
/// refused. Held records are lost if the process dies before they are written.
package actor IssuanceLedger: LedgerRecorder {
  private let store: any IssuanceLedgerStore
  private let capacity: Int
  private let logger: Logger
  private var held: [LedgerChain.Issuance] = []
  private var isFlushing = false

  package init(store: any IssuanceLedgerStore, capacity: Int = 100_000, logger: Logger) {
    self.store = store
    self.capacity = capacity
    self.logger = logger
  }

  /// Rows signed but not yet written.
  package var heldCount: Int { self.held.count }

  package func record(_ issuance: LedgerChain.Issuance) async throws(LedgerUnavailable) {
    let caughtUp = self.held.isEmpty ? true : await self.flush()
    if caughtUp {
      do {
        try await self.store.append([issuance])
        return
      } catch {
        self.logger.warning(
          "issuance ledger: cannot write; holding the row until the datastore is back",
          metadata: ["serial": "\(issuance.serial)", "held": "\(self.held.count + 1)", "error": "\(error)"])
      }
    }
    guard self.held.count < self.capacity else { throw LedgerUnavailable(held: self.held.count) }
    self.held.append(issuance)
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
