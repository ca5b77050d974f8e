import Testing

@testable import SDSAgentCore

@Suite struct RevisionMemoTests {
  @Test func aValueIsFoundAtItsRevisionOnly() {
    var memo = RevisionMemo<String, Int>(limit: 4)
    memo.keep(1, for: "default", at: 7)
    #expect(memo.value(for: "default", at: 7) == 1)
    #expect(memo.value(for: "default", at: 8) == nil)
    #expect(memo.value(for: "ROOTCA", at: 7) == nil)
  }

  @Test func anOlderRevisionNeverReplacesANewerOne() {
    var memo = RevisionMemo<String, Int>(limit: 4)
    memo.keep(2, for: "default", at: 9)
    memo.keep(1, for: "default", at: 8)
    #expect(memo.value(for: "default", at: 9) == 2)
    #expect(memo.value(for: "default", at: 8) == nil)
    memo.keep(3, for: "default", at: 10)
    #expect(memo.value(for: "default", at: 10) == 3)
  }

  @Test func pastItsLimitItStartsOver() {
    var memo = RevisionMemo<Int, Int>(limit: 3)
    for key in 0..<3 { memo.keep(key, for: key, at: 1) }
    memo.keep(0, for: 0, at: 2)
    #expect(memo.count == 3, "a kept key replaced in place")
    memo.keep(3, for: 3, at: 1)
    #expect(memo.count == 1 && memo.value(for: 3, at: 1) == 3 && memo.value(for: 0, at: 2) == nil)
  }
}
