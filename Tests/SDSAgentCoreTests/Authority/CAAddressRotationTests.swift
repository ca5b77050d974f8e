import Foundation
import SDSAgentCore
import Testing

/// The order in which a call tries the CA's addresses, with failures and retry hints, time passed in.
@Suite struct CAAddressRotationTests {
  let t0 = Fixtures.now
  func at(_ seconds: Double) -> Date { self.t0.addingTimeInterval(seconds) }
  let backoff = Backoff(initial: .seconds(2), maximum: .seconds(8))

  @Test func callsTakeTurnsFromTheStart() {
    var rotation = CAAddressRotation(count: 3, start: 1, backoff: self.backoff)
    #expect(rotation.order(now: self.t0) == [1, 2, 0])
    #expect(rotation.order(now: self.t0) == [2, 0, 1])
    #expect(rotation.order(now: self.t0) == [0, 1, 2])
  }

  @Test func aFailedAddressRestsForItsBackoffThenComesBack() {
    var rotation = CAAddressRotation(count: 2, start: 0, backoff: self.backoff)
    #expect(rotation.order(now: self.t0) == [0, 1])
    rotation.failed(0, now: self.t0, sample: 1)
    #expect(rotation.isResting(0, at: self.at(1)))
    // Its turn comes, but it rests: the other goes first, and it stays as the last resort.
    #expect(rotation.order(now: self.at(1)) == [1, 0])
    #expect(rotation.order(now: self.at(1)) == [1, 0])
    #expect(!rotation.isResting(0, at: self.at(2)))
    #expect(rotation.order(now: self.at(2)) == [1, 0])
    #expect(rotation.order(now: self.at(2)) == [0, 1])
  }

  @Test func failuresInARowRestLongerAndASuccessForgetsThem() {
    var rotation = CAAddressRotation(count: 2, start: 0, backoff: self.backoff)
    rotation.failed(0, now: self.t0, sample: 1)
    #expect(rotation.restingUntil(0) == self.at(2))
    rotation.failed(0, now: self.at(2), sample: 1)
    #expect(rotation.restingUntil(0) == self.at(6))
    rotation.failed(0, now: self.at(6), sample: 1)
    rotation.failed(0, now: self.at(14), sample: 1)
    #expect(rotation.restingUntil(0) == self.at(22))
    rotation.succeeded(0)
    #expect(rotation.restingUntil(0) == nil)
    rotation.failed(0, now: self.at(30), sample: 1)
    #expect(rotation.restingUntil(0) == self.at(32))
  }

  @Test func aRetryHintLongerThanTheBackoffIsHonoured() {
    var rotation = CAAddressRotation(count: 2, start: 0, backoff: self.backoff)
    rotation.failed(1, now: self.t0, sample: 0.1, hint: .seconds(5))
    #expect(rotation.restingUntil(1) == self.at(5))
    rotation.failed(0, now: self.t0, sample: 1, hint: .milliseconds(500))
    #expect(rotation.restingUntil(0) == self.at(2))
    // Both rest: the sooner back is tried first.
    #expect(rotation.order(now: self.at(1)) == [0, 1])
    #expect(rotation.order(now: self.at(1)) == [0, 1])
  }

  @Test func nodesStartSpreadOverTheAddresses() {
    let starts = (0..<300).map { CAAddressRotation.startIndex(for: "node-\($0)", count: 3) }
    #expect(CAAddressRotation.startIndex(for: "node-1", count: 3) == starts[1])
    for index in 0..<3 {
      // Each address is the first of about a third of the nodes.
      #expect((60...140).contains(starts.count { $0 == index }))
    }
  }
}
