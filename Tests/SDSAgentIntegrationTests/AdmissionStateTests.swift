import Foundation
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `ca serve`'s admission control: the in-flight cap, each caller's token bucket under the
/// manual clock, and the bound on the callers it remembers.
@Suite struct AdmissionStateTests {
  typealias State = AdmissionState<ManualClock.Instant>
  let clock = ManualClock()
  static let node = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/kube-system/sa/node-1")
  static let other = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/kube-system/sa/node-2")

  func refusal(_ decision: AdmissionDecision) -> AdmissionRefusal? {
    guard case .refused(let refusal) = decision else { return nil }
    return refusal
  }

  @Test func callsInFlightAreCappedAndAFinishedOneFreesItsSlot() {
    var state = State(limits: .init(maximumInFlight: 2))
    #expect(state.start(now: self.clock.now) == .admitted)
    #expect(state.start(now: self.clock.now) == .admitted)
    let refused = self.refusal(state.start(now: self.clock.now))
    #expect(refused?.reason == .inFlight)
    #expect((refused?.retryAfter ?? .zero) >= State.shortestHint)
    state.finished(took: .milliseconds(3))
    #expect(state.inFlight == 1)
    #expect(state.start(now: self.clock.now) == .admitted)
  }

  @Test func theHintGrowsWithTheCallersRefusedInTheSameSecond() {
    var state = State(limits: .init(maximumInFlight: 1), signingTime: .milliseconds(50))
    _ = state.start(now: self.clock.now)
    let hints = (0..<10).compactMap { _ in
      self.refusal(state.start(now: self.clock.now))?.retryAfter
    }
    #expect(hints.count == 10)
    #expect(hints.first == State.shortestHint)
    #expect(hints.last == .milliseconds(500))
    self.clock.advance(by: .seconds(2))
    #expect(self.refusal(state.start(now: self.clock.now))?.retryAfter == State.shortestHint)
  }

  @Test func noCapAdmitsEverything() {
    var state = State(limits: .init(maximumInFlight: 0))
    for _ in 0..<1000 { #expect(state.start(now: self.clock.now) == .admitted) }
  }

  @Test func eachCallerHasItsOwnBucketRefilledAtItsRate() {
    var state = State(limits: .init(maximumInFlight: 0, callerRate: 2))
    // A burst of one second's worth, then the next token in half a second.
    #expect(state.charge(caller: Self.node, now: self.clock.now) == .admitted)
    #expect(state.charge(caller: Self.node, now: self.clock.now) == .admitted)
    let refused = self.refusal(state.charge(caller: Self.node, now: self.clock.now))
    #expect(refused == AdmissionRefusal(.callerRate, retryAfter: .milliseconds(500)))
    #expect(state.charge(caller: Self.other, now: self.clock.now) == .admitted)
    self.clock.advance(by: .milliseconds(250))
    #expect(self.refusal(state.charge(caller: Self.node, now: self.clock.now))?.retryAfter == .milliseconds(250))
    self.clock.advance(by: .milliseconds(250))
    #expect(state.charge(caller: Self.node, now: self.clock.now) == .admitted)
    #expect(self.refusal(state.charge(caller: Self.node, now: self.clock.now))?.reason == .callerRate)
  }

  @Test func aSlowRateStillAllowsOneSigning() {
    var state = State(limits: .init(maximumInFlight: 0, callerRate: 0.1))
    #expect(state.charge(caller: Self.node, now: self.clock.now) == .admitted)
    #expect(self.refusal(state.charge(caller: Self.node, now: self.clock.now))?.retryAfter == .seconds(10))
  }

  @Test func theTableOfCallersIsBoundedIdleOnesGoFirst() throws {
    var state = State(limits: .init(maximumInFlight: 0, callerRate: 1, maximumCallers: 3))
    let callers = try (0..<10).map { try SPIFFEID(parsing: "spiffe://cluster.local/ns/a/sa/w\($0)") }
    for caller in callers.prefix(3) { _ = state.charge(caller: caller, now: self.clock.now) }
    #expect(state.callers == 3)
    // None idle yet: the least recently seen makes room.
    self.clock.advance(by: .milliseconds(100))
    _ = state.charge(caller: callers[3], now: self.clock.now)
    #expect(state.callers == 3)
    // A second later all have refilled: they are idle and go at once.
    self.clock.advance(by: .seconds(1))
    _ = state.charge(caller: callers[4], now: self.clock.now)
    #expect(state.callers == 1)
    for caller in callers { _ = state.charge(caller: caller, now: self.clock.now) }
    #expect(state.callers <= 3)
  }

  @Test func theControlCountsWhatItAdmittedAndRefused() {
    let control = SigningAdmissionControl(limits: .init(maximumInFlight: 1), clock: self.clock)
    #expect(control.start() == .admitted)
    #expect(self.refusal(control.start())?.reason == .inFlight)
    self.clock.advance(by: .milliseconds(20))
    control.finished()
    #expect(control.start() == .admitted)
    let figures = control.figures
    #expect(figures.admitted == 2 && figures.refused == [.inFlight: 1] && figures.inFlight == 1)
    let limited = SigningAdmissionControl(limits: .init(maximumInFlight: 0, callerRate: 1), clock: self.clock)
    #expect(limited.charge(caller: Self.node) == .admitted)
    #expect(self.refusal(limited.charge(caller: Self.node))?.reason == .callerRate)
    #expect(limited.figures.refused == [.callerRate: 1])
  }
}
