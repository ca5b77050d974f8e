import Foundation
import Synchronization

/// A clock that only moves when a test advances it, with a wall-clock view (`date`) for code
/// that reasons about certificate dates. Tests await `sleepers(atLeast:)` instead of sleeping.
package final class ManualClock: Clock, Sendable {
  package struct Instant: InstantProtocol, CustomStringConvertible {
    package var offset: Duration

    package func advanced(by duration: Duration) -> Instant { Instant(offset: self.offset + duration) }
    package func duration(to other: Instant) -> Duration { other.offset - self.offset }
    package static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    package var description: String { "+\(self.offset)" }
  }

  private struct Sleeper {
    let id: UInt64
    let deadline: Instant
    let continuation: CheckedContinuation<Void, any Error>
  }

  private struct State {
    var now = Instant(offset: .zero)
    var sleepers: [Sleeper] = []
    var nextID: UInt64 = 0
    var sleeperWatchers:
      [(isSatisfied: @Sendable ([Instant]) -> Bool, continuation: CheckedContinuation<Void, Never>)] =
        []
  }

  private let state = Mutex(State())
  package let startDate: Date

  package init(startDate: Date = Date()) {
    self.startDate = startDate
  }

  package var now: Instant { self.state.withLock { $0.now } }
  package var minimumResolution: Duration { .zero }

  /// The wall-clock time at `now`.
  package var date: Date { self.startDate.addingTimeInterval(self.now.offset.timeInterval) }

  package func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    let id = self.state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let watchers: [CheckedContinuation<Void, Never>] = self.state.withLock { state in
          if deadline <= state.now {
            continuation.resume()
            return []
          }
          if Task.isCancelled {
            continuation.resume(throwing: CancellationError())
            return []
          }
          state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
          return Self.takeSatisfiedWatchers(&state)
        }
        watchers.forEach { $0.resume() }
      }
    } onCancel: {
      let sleeper = self.state.withLock { state -> Sleeper? in
        guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
        return state.sleepers.remove(at: index)
      }
      sleeper?.continuation.resume(throwing: CancellationError())
    }
  }

  /// Moves time forward and wakes every sleeper whose deadline has come.
  package func advance(by duration: Duration) {
    let woken = self.state.withLock { state -> [Sleeper] in
      state.now = state.now.advanced(by: duration)
      let now = state.now
      let woken = state.sleepers.filter { $0.deadline <= now }
      state.sleepers.removeAll { $0.deadline <= now }
      return woken
    }
    woken.forEach { $0.continuation.resume() }
  }

  /// Returns once at least `count` tasks are sleeping on this clock.
  package func sleepers(atLeast count: Int) async {
    await self.sleepers { $0.count >= count }
  }

  /// Returns once a task sleeps until `offset` from the start.
  package func sleeper(until offset: Duration) async {
    await self.sleepers { $0.contains(Instant(offset: offset)) }
  }

  private func sleepers(where isSatisfied: @escaping @Sendable ([Instant]) -> Bool) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let ready = self.state.withLock { state -> Bool in
        if isSatisfied(state.sleepers.map(\.deadline)) { return true }
        state.sleeperWatchers.append((isSatisfied, continuation))
        return false
      }
      if ready { continuation.resume() }
    }
  }

  /// The deadline of the earliest sleeper, as an offset from the start.
  package var nextDeadline: Duration? {
    self.state.withLock { $0.sleepers.map(\.deadline.offset).min() }
  }

  private static func takeSatisfiedWatchers(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
    let deadlines = state.sleepers.map(\.deadline)
    let satisfied = state.sleeperWatchers.filter { $0.isSatisfied(deadlines) }.map(\.continuation)
    state.sleeperWatchers.removeAll { $0.isSatisfied(deadlines) }
    return satisfied
  }
}

extension Duration {
  package var timeInterval: TimeInterval {
    let (seconds, attoseconds) = self.components
    return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
  }
}
