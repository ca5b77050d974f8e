import Synchronization

/// A store that has not answered within its limit (a datastore that accepts connections but
/// never replies): the row is held as if the store were down, and the answer leaves.
package struct LedgerStoreStalled: Error, CustomStringConvertible {
  package init() {}

  package var description: String { "the issuance ledger's datastore did not answer in time" }
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

extension IssuanceLedger {
  /// `operation`'s outcome, or `LedgerStoreStalled` once `limit` has passed; the operation is
  /// left to finish on its own (the store drops a connection that stalled).
  package static func within<C: Clock<Duration>>(
    _ limit: Duration, on clock: C, _ operation: @escaping @Sendable () async throws -> Void
  ) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      let first = FirstResult(continuation)
      Task {
        do {
          try await operation()
          first.offer(.success(()))
        } catch {
          first.offer(.failure(error))
        }
      }
      Task {
        try? await clock.sleep(for: limit)
        first.offer(.failure(LedgerStoreStalled()))
      }
    }
  }
}
