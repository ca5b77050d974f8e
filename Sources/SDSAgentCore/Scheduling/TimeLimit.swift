/// Runs `operation` until it returns or `limit` passes on `clock`, whichever comes first; `nil`
/// when the time ran out. Then `onTimeout` runs before the operation is cancelled and awaited, to
/// end work that does not notice cancellation (closing the connection it reads).
package func withTimeLimit<C: Clock, Result: Sendable>(
  _ limit: C.Duration,
  on clock: C,
  onTimeout: @Sendable () -> Void = {},
  _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result? {
  try await withThrowingTaskGroup(of: Result?.self) { group in
    group.addTask { try await operation() }
    group.addTask {
      try await clock.sleep(for: limit)
      return nil
    }
    let first = try await group.next() ?? nil
    if first == nil { onTimeout() }
    group.cancelAll()
    return first
  }
}
