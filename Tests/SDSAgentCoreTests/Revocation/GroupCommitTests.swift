import SDSAgentCore
import Testing

/// The group commit as a value: one flush at a time, what arrives meanwhile written by the next
/// one in arrival order, each entry in exactly one batch.
@Suite struct GroupCommitTests {
  @Test func theFirstEntryLeadsAndWhatArrivesDuringItsFlushIsTheNextBatchInOrder() {
    var commit = GroupCommit<String>()
    #expect(commit.submit("a") == .lead)
    #expect(commit.submit("b") == .wait)
    #expect(commit.submit("c") == .wait)
    #expect(commit.submit("d") == .wait)
    #expect(commit.waiting == 3)
    #expect(commit.flushed() == .lead(["b", "c", "d"]))
    #expect(commit.waiting == 0)
    #expect(commit.submit("e") == .wait)
    #expect(commit.flushed() == .lead(["e"]))
    #expect(commit.flushed() == .idle)
    #expect(commit.submit("f") == .lead)
    #expect(commit.flushed() == .idle)
  }

  @Test func noEntryIsInTwoBatchesOrInNone() {
    var commit = GroupCommit<Int>()
    var written: [Int] = []
    var leading = false
    for entry in 0..<100 {
      switch commit.submit(entry) {
      case .lead:
        #expect(!leading, "two flushes at once")
        leading = true
        written.append(entry)
      case .wait: break
      }
      if entry % 7 == 6, leading {
        switch commit.flushed() {
        case .idle: leading = false
        case .lead(let batch): written += batch
        }
      }
    }
    while leading {
      switch commit.flushed() {
      case .idle: leading = false
      case .lead(let batch): written += batch
      }
    }
    #expect(written == Array(0..<100))
  }
}
