import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The time limit that does not wait for the operation it gave up on, on a manual clock.
@Suite(.timeLimit(.minutes(1))) struct AbandoningTimeLimitTests {
  @Test func anOperationThatNeverAnswersIsGivenUpAfterItsLimit() async throws {
    let clock = ManualClock()
    let released = WakeSignal()
    let waiting = Task {
      try await withAbandoningTimeLimit(.seconds(3), on: clock) {
        await released.wait()
      }
    }
    await clock.sleepers(atLeast: 1)
    clock.advance(by: .seconds(2))
    clock.advance(by: .seconds(1))
    await #expect(throws: TimeLimitPassed.self) { try await waiting.value }
    released.signal()
  }

  @Test func anOperationThatAnswersInTimeGivesItsOutcomeAndEndsTheTimer() async throws {
    // The clock never moves: only the operation can settle the call. Each operation answers
    // once the timer sleeps, so a timer left running would still be asleep afterwards.
    let clock = ManualClock()
    try await withAbandoningTimeLimit(.seconds(3), on: clock) { await clock.sleepers(atLeast: 1) }
    #expect(clock.nextDeadline == nil, "the timer still sleeps after the answer")
    await #expect(throws: OperationFailure.self) {
      try await withAbandoningTimeLimit(.seconds(3), on: clock) {
        await clock.sleepers(atLeast: 1)
        throw OperationFailure()
      }
    }
    #expect(clock.nextDeadline == nil, "the timer still sleeps after the failure")
  }
}

private struct OperationFailure: Error {}
