import SDSAgentCore

/// One client's files, followed by the `FileWatchService` until this is released.
package final class FileWatch: Sendable {
  private let service: FileWatchService
  private let id: UInt64
  /// Signalled when something changed where the files lie; signals while nobody waits count as one.
  package let changes: WakeSignal

  init(service: FileWatchService, id: UInt64, changes: WakeSignal) {
    self.service = service
    self.id = id
    self.changes = changes
  }

  deinit {
    self.service.remove(self.id)
  }

  /// Follows exactly `paths` from now on.
  package func follow(_ paths: Set<String>) {
    self.service.replace(self.id, with: paths)
  }

  /// The directories watched for these files now.
  var directories: Set<String> { self.service.directories(of: self.id) }

  /// Calls `check` `settle` after a change (so files written one after the other are read
  /// together) and `recheck` after the last call when nothing changed (for filesystems whose
  /// changes inotify does not see), both on `clock`, until the task is cancelled.
  package func run(
    settle: Duration, recheck: Duration, clock: any Clock<Duration>, _ check: @Sendable () async -> Void
  ) async {
    await Self.run(self.changes, settle: settle, recheck: recheck, clock: clock, check)
  }

  private static func run<C: Clock<Duration>>(
    _ changes: WakeSignal, settle: Duration, recheck: Duration, clock: C, _ check: @Sendable () async -> Void
  ) async {
    var due = clock.now.advanced(by: recheck)
    while true {
      let deadline = due
      var tick = DeadlineTimer(clock: clock, wake: changes) { deadline }.makeAsyncIterator()
      guard await tick.next() != nil else { return }
      if clock.now < deadline {
        try? await clock.sleep(for: settle)
        guard !Task.isCancelled else { return }
      }
      await check()
      due = clock.now.advanced(by: recheck)
    }
  }
}
