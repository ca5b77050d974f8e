import Foundation
import Logging
import SDSAgentCore
import Synchronization
import Testing

/// Certificates signed while the ledger's store is writing are written together by its next
/// append (one transaction), in order, and none returns before its row is written.
@Suite struct IssuanceLedgerGroupCommitTests {
  /// A store whose first append waits until it is let through.
  final class GatedStore: IssuanceLedgerStore {
    private let appends = Mutex<[[String]]>([])
    private let gate: AsyncStream<Void>
    private let opener: AsyncStream<Void>.Continuation

    init() {
      (self.gate, self.opener) = AsyncStream.makeStream()
    }

    var batches: [[String]] { self.appends.withLock { $0 } }
    func holds(_ serial: String) -> Bool { self.appends.withLock { $0.contains { $0.contains(serial) } } }
    func open() { self.opener.yield() }

    func append(_ issuances: [LedgerChain.Issuance]) async throws {
      if self.appends.withLock({ $0.isEmpty }) {
        for await _ in self.gate { break }
      }
      self.appends.withLock { $0.append(issuances.map(\.serial)) }
    }
  }

  func issuance(_ serial: String) -> LedgerChain.Issuance { IssuanceLedgerTests.issuance(serial) }

  @Test func recordsArrivingDuringAnAppendAreOneAppendInOrder() async throws {
    let store = GatedStore()
    let ledger = IssuanceLedger(store: store, logger: Logger(label: "test"))
    // Each task runs until it waits, so its row is submitted when `Task.immediate` returns.
    let calls = ["01", "02", "03", "04"].map { serial in
      Task.immediate {
        try await ledger.record(self.issuance(serial))
        return store.holds(serial)
      }
    }
    #expect(store.batches.isEmpty)
    store.open()
    for call in calls { #expect(try await call.value) }
    #expect(store.batches == [["01"], ["02", "03", "04"]])
    #expect(await ledger.heldCount == 0)
  }
}
