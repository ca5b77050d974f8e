import Synchronization

/// Rows made durable in groups (`GroupCommit`): while one flush is in progress, the rows that
/// arrive wait and are flushed together by the next, so concurrent callers share one `fsync` (or
/// one transaction). Each caller returns only once the flush carrying its row has ended, with
/// that flush's outcome. The flush is run by a caller whose row it carries; none is left running
/// when the last caller has returned.
package final class GroupCommitter<Row: Sendable, Failure: Error>: Sendable {
  private struct Waiter: Sendable {
    let row: Row
    let continuation: CheckedContinuation<Outcome, Never>
  }

  private enum Outcome: Sendable {
    case flushed(Result<Void, Failure>)
    /// Flush these rows (the first is the caller's own), then hand over.
    case lead([Waiter])
  }

  private let state = Mutex(GroupCommit<Waiter>())

  package init() {}

  /// Rows waiting for the next flush.
  package var waiting: Int { self.state.withLock { $0.waiting } }

  /// Returns once `row` is durable, or throws why the flush carrying it failed. `flush` writes
  /// a batch in the order given; the leading caller's is the one used, so every caller of one
  /// committer passes the same.
  package func commit(
    _ row: Row, flush: @Sendable ([Row]) async -> Result<Void, Failure>
  ) async throws(Failure) {
    let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
      let waiter = Waiter(row: row, continuation: continuation)
      if self.state.withLock({ $0.submit(waiter) }) == .lead {
        continuation.resume(returning: .lead([waiter]))
      }
    }
    switch outcome {
    case .flushed(let result):
      try result.get()
    case .lead(let batch):
      let result = await flush(batch.map(\.row))
      if case .lead(let next) = self.state.withLock({ $0.flushed() }) {
        next[0].continuation.resume(returning: .lead(next))
      }
      for waiter in batch.dropFirst() {
        waiter.continuation.resume(returning: .flushed(result))
      }
      try result.get()
    }
  }
}
