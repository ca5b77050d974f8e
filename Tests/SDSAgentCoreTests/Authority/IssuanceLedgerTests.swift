import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// A store that keeps sealed rows in memory and can be made unreachable.
private final class MemoryLedgerStore: IssuanceLedgerStore {
  struct Unreachable: Error {}
  private let state = Mutex((rows: [LedgerEntry](), reachable: true))

  var rows: [LedgerEntry] { self.state.withLock { $0.rows } }
  func setReachable(_ reachable: Bool) { self.state.withLock { $0.reachable = reachable } }

  func append(_ issuances: [LedgerChain.Issuance]) async throws {
    try self.state.withLock { state in
      guard state.reachable else { throw Unreachable() }
      for issuance in issuances { state.rows.append(LedgerChain.sealing(issuance, after: state.rows.last)) }
    }
  }
}

@Suite struct IssuanceLedgerTests {
  /// A row of the ledger suites, by serial.
  static func issuance(_ serial: String) -> LedgerChain.Issuance {
    let start = Date(timeIntervalSince1970: 1_800_000_000)
    return LedgerChain.Issuance(
      serial: serial, spiffeID: "spiffe://example.org/ns/a/sa/w", caller: "spiffe://example.org/ns/a/sa/w",
      impersonatedBy: nil, replica: "ca-1", notBefore: start, notAfter: start.addingTimeInterval(3600))
  }

  private func issuance(_ serial: String) -> LedgerChain.Issuance { Self.issuance(serial) }

  @Test func eachRecordIsWrittenBeforeItReturns() async throws {
    let store = MemoryLedgerStore()
    let ledger = IssuanceLedger(store: store, logger: Logger(label: "test"))
    try await ledger.record(self.issuance("01"))
    #expect(store.rows.map(\.serial) == ["01"])
    try await ledger.record(self.issuance("02"))
    #expect(store.rows.map(\.serial) == ["01", "02"])
    #expect(await ledger.heldCount == 0)
  }

  @Test func rowsHeldWhileTheStoreIsDownAreWrittenFirstAndInOrderWhenItIsBack() async throws {
    let store = MemoryLedgerStore()
    let ledger = IssuanceLedger(store: store, logger: Logger(label: "test"))
    try await ledger.record(self.issuance("01"))
    store.setReachable(false)
    try await ledger.record(self.issuance("02"))
    try await ledger.record(self.issuance("03"))
    #expect(await ledger.heldCount == 2)
    #expect(store.rows.map(\.serial) == ["01"])
    store.setReachable(true)
    try await ledger.record(self.issuance("04"))
    #expect(store.rows.map(\.serial) == ["01", "02", "03", "04"])
    #expect(LedgerChain.verify(store.rows) == .verified(rows: 4, head: store.rows.last))
  }

  @Test func pastItsCapacityTheLedgerRefusesAndKeepsWhatItHolds() async throws {
    let store = MemoryLedgerStore()
    let ledger = IssuanceLedger(store: store, capacity: 2, logger: Logger(label: "test"))
    store.setReachable(false)
    try await ledger.record(self.issuance("01"))
    try await ledger.record(self.issuance("02"))
    await #expect(throws: LedgerUnavailable(held: 2)) { try await ledger.record(self.issuance("03")) }
    #expect(await ledger.heldCount == 2)
  }

  @Test func theRetryLoopWritesHeldRowsWithoutANewRecord() async throws {
    let store = MemoryLedgerStore()
    let ledger = IssuanceLedger(store: store, logger: Logger(label: "test"))
    let clock = ManualClock()
    store.setReachable(false)
    try await ledger.record(self.issuance("01"))
    let retry = Task { await ledger.retryHeldRows(every: .seconds(5), clock: clock) }
    await clock.sleepers(atLeast: 1)
    clock.advance(by: .seconds(5))
    await clock.sleepers(atLeast: 1)
    #expect(store.rows.isEmpty, "the store is still down")
    store.setReachable(true)
    clock.advance(by: .seconds(5))
    await clock.sleepers(atLeast: 1)
    #expect(store.rows.map(\.serial) == ["01"])
    #expect(await ledger.heldCount == 0)
    retry.cancel()
    await retry.value
  }
}
