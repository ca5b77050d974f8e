import Synchronization

/// Something that happens once (an endpoint started listening); any number of tasks can wait
/// for it, before or after.
package final class Milestone: Sendable {
  private struct State {
    var reached = false
    var waiters: [CheckedContinuation<Void, Never>] = []
  }

  private let state = Mutex(State())

  package init() {}

  package func reach() {
    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
      guard !state.reached else { return [] }
      state.reached = true
      defer { state.waiters = [] }
      return state.waiters
    }
    waiters.forEach { $0.resume() }
  }

  package func wait() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let reached = self.state.withLock { state -> Bool in
        if state.reached { return true }
        state.waiters.append(continuation)
        return false
      }
      if reached { continuation.resume() }
    }
  }
}
