import Synchronization

/// `withAbandoningTimeLimit`'s limit passed while the operation had not answered.
package struct TimeLimitPassed: Error, CustomStringConvertible {
  package init() {}

  package var description: String { "no answer within the time limit" }
}

/// Waits for `operation` at most `limit` on `clock`, then throws `TimeLimitPassed`. Unlike
/// `withTimeLimit`, the operation is not awaited once the limit passed: it is left to finish on
/// its own, for work that ignores cancellation (a datastore read on a connection that stalled,
/// which ends with its connection). The timer ends as soon as the operation answers.
package func withAbandoningTimeLimit<C: Clock<Duration>>(
  _ limit: Duration, on clock: C, _ operation: @escaping @Sendable () async throws -> Void
) async throws {
  try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
    let first = FirstResult(continuation)
    let timer = Task {
      try await clock.sleep(for: limit)
      first.offer(.failure(TimeLimitPassed()))
    }
    Task {
      let result: Result<Void, any Error>
      do {
        try await operation()
        result = .success(())
      } catch {
        result = .failure(error)
      }
      timer.cancel()
      first.offer(result)
    }
  }
}

/// Resumes its continuation once: with the first result offered, the others dropped.
private final class FirstResult: Sendable {
  private let continuation: Mutex<CheckedContinuation<Void, any Error>?>

  init(_ continuation: CheckedContinuation<Void, any Error>) {
    self.continuation = Mutex(continuation)
  }

  func offer(_ result: Result<Void, any Error>) {
    let waiting = self.continuation.withLock { continuation in
      defer { continuation = nil }
      return continuation
    }
    waiting?.resume(with: result)
  }
}
