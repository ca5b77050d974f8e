import Foundation
import SDSAgentCore
import ServiceLifecycle

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Reading the inotify events: one thread, blocked in `poll` on the descriptor and on a pipe that
/// graceful shutdown (or cancellation) writes to.
extension FileWatchService {
  /// An event that can change which directories must be watched: an entry created, removed or
  /// renamed, a watched directory gone, or events lost.
  static let structural = UInt32(
    IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW)

  package func run() async {
    if let unavailable = self.unavailable {
      self.logger.warning(
        "inotify is not available; changed files are noticed only by the slow re-check",
        metadata: ["error": "\(unavailable)"])
      return
    }
    let alreadyRunning = self.state.withLock { state in
      defer { state.isRunning = true }
      return state.isRunning
    }
    precondition(!alreadyRunning, "FileWatchService runs once")
    await cancelWhenGracefulShutdown {
      await withTaskCancellationHandler {
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
          let thread = Thread { [self] in
            if let failure = self.readEvents() {
              self.logger.warning(
                "inotify stopped; changed files are noticed only by the slow re-check",
                metadata: ["error": "\(failure)"])
            }
            finished.resume()
          }
          thread.name = "sds-agent-inotify"
          thread.start()
        }
      } onCancel: {
        var byte: UInt8 = 1
        _ = write(self.stopPipe.write, &byte, 1)
      }
    }
  }

  /// Reads until stopped (nil) or until `poll` fails (why).
  private func readEvents() -> String? {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    var descriptors = [
      pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0),
      pollfd(fd: self.stopPipe.read, events: Int16(POLLIN), revents: 0),
    ]
    while true {
      if poll(&descriptors, 2, -1) < 0 {
        if errno == EINTR { continue }
        return "poll failed: \(Errno.current)"
      }
      if descriptors[1].revents != 0 { return nil }
      guard descriptors[0].revents & Int16(POLLIN) != 0 else { continue }
      var events: [(watch: Int32, mask: UInt32)] = []
      while true {
        let count = buffer.withUnsafeMutableBytes { read(self.descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { break }
        buffer.withUnsafeBytes { bytes in
          var offset = 0
          while offset + 16 <= count {
            let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
            events.append((watch, mask))
            offset += 16 + Int(length)
          }
        }
      }
      self.handle(events)
    }
  }

  /// Signals every follower watched through a directory an event names (all of them when events
  /// were lost), and, after an event that moves things, watches anew.
  func handle(_ events: [(watch: Int32, mask: UInt32)]) {
    let signals = self.state.withLock { state -> [WakeSignal] in
      var signalled: Set<UInt64> = []
      var structural = false
      for event in events {
        structural = structural || event.mask & Self.structural != 0
        if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
          signalled.formUnion(state.followers.keys)
          continue
        }
        guard let directories = state.watches[event.watch] else { continue }
        for (id, follower) in state.followers where !follower.directories.isDisjoint(with: directories) {
          signalled.insert(id)
        }
      }
      if structural { signalled.formUnion(self.resync(&state)) }
      return signalled.compactMap { state.followers[$0]?.changes }
    }
    for signal in signals { signal.signal() }
  }
}
