/// A timer sequence whose next tick is at a deadline read anew before each wait, or earlier when
/// its `WakeSignal` fires. It ends when the iterating task is cancelled.
package struct DeadlineTimer<C: Clock>: AsyncSequence, Sendable {
  package typealias Element = Void

  let clock: C
  let wake: WakeSignal
  /// The next deadline; `nil` waits for the signal alone.
  let deadline: @Sendable () -> C.Instant?

  package init(clock: C, wake: WakeSignal, deadline: @escaping @Sendable () -> C.Instant?) {
    self.clock = clock
    self.wake = wake
    self.deadline = deadline
  }

  package struct AsyncIterator: AsyncIteratorProtocol {
    let timer: DeadlineTimer

    package mutating func next() async -> Void? {
      guard !Task.isCancelled else { return nil }
      let deadline = self.timer.deadline()
      await withTaskGroup(of: Void.self) { [timer] group in
        group.addTask { await timer.wake.wait() }
        if let deadline {
          group.addTask { try? await timer.clock.sleep(until: deadline, tolerance: nil) }
        }
        await group.next()
        group.cancelAll()
      }
      return Task.isCancelled ? nil : ()
    }
  }

  package func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(timer: self)
  }
}
