import Foundation
import SDSAgentCore
import Testing

@Suite struct LedgerChainTests {
  private let start = Date(timeIntervalSince1970: 1_800_000_000)

  private func issuance(_ index: Int, lifetime: TimeInterval = 3600) -> LedgerChain.Issuance {
    let notBefore = self.start.addingTimeInterval(TimeInterval(index) * 60)
    return LedgerChain.Issuance(
      serial: String(format: "%02x", 0x10 + index), spiffeID: "spiffe://example.org/ns/a/sa/w\(index)",
      caller: "system:serviceaccount:a:w\(index)",
      impersonatedBy: index.isMultiple(of: 2) ? "spiffe://example.org/node" : nil,
      replica: "ca-\(index % 2)", notBefore: notBefore, notAfter: notBefore.addingTimeInterval(lifetime))
  }

  private func chain(_ count: Int) -> [LedgerEntry] {
    var rows: [LedgerEntry] = []
    for index in 0..<count { rows.append(LedgerChain.sealing(self.issuance(index), after: rows.last)) }
    return rows
  }

  @Test func aSealedChainVerifiesAndEachRowCoversTheOneBefore() {
    let rows = self.chain(5)
    #expect(rows.map(\.sequence) == [1, 2, 3, 4, 5])
    #expect(rows[0].previousHash == LedgerEntry.genesisHash)
    #expect(rows[3].previousHash == rows[2].hash)
    #expect(LedgerChain.verify(rows) == .verified(rows: 5, head: rows[4]))
  }

  @Test func aChangedFieldIsNamedByItsRow() {
    var rows = self.chain(5)
    rows[2].spiffeID = "spiffe://example.org/ns/a/sa/intruder"
    #expect(LedgerChain.verify(rows) == .broken(LedgerBreak(sequence: 3, reason: .changed)))
  }

  @Test func aRowChangedAndRehashedBreaksTheNextRow() {
    var rows = self.chain(5)
    rows[1].notAfter = rows[1].notAfter.addingTimeInterval(86400)
    rows[1].hash = rows[1].computedHash
    #expect(LedgerChain.verify(rows) == .broken(LedgerBreak(sequence: 3, reason: .previousHashMismatch)))
  }

  @Test func aDeletedRowIsNamedAsMissing() {
    var rows = self.chain(5)
    rows.remove(at: 3)
    #expect(LedgerChain.verify(rows) == .broken(LedgerBreak(sequence: 4, reason: .missing)))
  }

  @Test func theFirstRowsDeletedWithoutACheckpointAreMissing() {
    let rows = Array(self.chain(5).dropFirst(2))
    #expect(LedgerChain.verify(rows) == .broken(LedgerBreak(sequence: 2, reason: .missing)))
  }

  @Test func pruningRemovesOnlyTheExpiredPrefixAndItsCheckpointKeepsTheChainVerifiable() throws {
    var rows = self.chain(3)
    rows.append(LedgerChain.sealing(self.issuance(3, lifetime: 86400 * 30), after: rows.last))
    rows.append(LedgerChain.sealing(self.issuance(4), after: rows.last))
    let now = self.start.addingTimeInterval(86400 * 2)
    let pruned = try #require(LedgerChain.pruning(rows, now: now, retention: 86400, replica: "ca-0"))
    #expect(pruned.removedThrough == 3)
    #expect(pruned.checkpoint.sequence == 6)
    #expect(pruned.checkpoint.prunedHash == rows[2].hash)
    let kept = rows.filter { $0.sequence > pruned.removedThrough } + [pruned.checkpoint]
    #expect(LedgerChain.verify(kept) == .verified(rows: 3, head: pruned.checkpoint))
    let next = LedgerChain.sealing(self.issuance(9), after: pruned.checkpoint)
    #expect(LedgerChain.verify(kept + [next]) == .verified(rows: 4, head: next))
  }

  @Test func nothingIsPrunedWithinTheRetention() {
    let rows = self.chain(4)
    #expect(LedgerChain.pruning(rows, now: self.start.addingTimeInterval(7200), retention: 86400, replica: "x") == nil)
  }

  @Test func aForgedCheckpointIsCaught() throws {
    let rows = self.chain(4)
    let now = self.start.addingTimeInterval(86400 * 3)
    var pruned = try #require(LedgerChain.pruning(rows, now: now, retention: 86400, replica: "ca-0"))
    #expect(pruned.removedThrough == 3)
    pruned.checkpoint.prunedHash = LedgerEntry.genesisHash
    let kept = [rows[3], pruned.checkpoint]
    #expect(LedgerChain.verify(kept) == .broken(LedgerBreak(sequence: 4, reason: .previousHashMismatch)))
  }

  @Test func theHashCoversEveryField() {
    let row = self.chain(1)[0]
    var variants: [LedgerEntry] = []
    for change in 0..<7 {
      var changed = row
      switch change {
      case 0: changed.serial = "ff"
      case 1: changed.caller = "someone-else"
      case 2: changed.impersonatedBy = nil
      case 3: changed.replica = "ca-9"
      case 4: changed.notBefore = changed.notBefore.addingTimeInterval(1)
      case 5: changed.kind = .checkpoint
      default: changed.sequence = 2
      }
      variants.append(changed)
    }
    for variant in variants { #expect(variant.computedHash != row.hash) }
  }
}
