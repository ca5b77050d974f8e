import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// The one time limit the agent's clients and health check share, on a manual clock.
@Suite struct TimeLimitTests {
  @Test func anAnswerBeforeTheLimitIsReturned() async throws {
    let clock = ManualClock()
    let answer = try await withTimeLimit(.seconds(5), on: clock) { 42 }
    #expect(answer == 42)
  }

  @Test func theLimitEndsAnOperationThatNeverAnswersAndCallsOnTimeoutFirst() async throws {
    let clock = ManualClock()
    let timedOut = Mutex(false)
    let never = AsyncStream<Int> { _ in }
    async let answer = withTimeLimit(.seconds(5), on: clock, onTimeout: { timedOut.withLock { $0 = true } }) {
      for await value in never { return value }
      return -1
    }
    await clock.sleepers(atLeast: 1)
    clock.advance(by: .seconds(4))
    #expect(!timedOut.withLock { $0 })
    clock.advance(by: .seconds(1))
    #expect(try await answer == nil)
    #expect(timedOut.withLock { $0 })
  }
}
