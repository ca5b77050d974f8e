import Foundation
import SDSAgentCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// inotify on a set of directories: `onChange` is called when an entry in one of them is
/// created, written, renamed or removed (a write in place, an atomic rename, a Kubernetes
/// `..data` symlink swap, certbot's new files and symlinks). One thread reads the events; it
/// looks at its stop flag at least twice a second.
final class DirectoryWatch: Sendable {
  private let onChange: @Sendable () -> Void
  private let descriptor: Int32
  private let watched = Mutex<Set<String>>([])
  private let stopped = Atomic<Bool>(false)

  init(onChange: @escaping @Sendable () -> Void) throws {
    self.onChange = onChange
    let descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
    guard descriptor >= 0 else { throw AgentError(.stateDirectory, "inotify_init1 failed: \(Errno.current)") }
    self.descriptor = descriptor
    let thread = Thread { [self] in self.readEvents() }
    thread.name = "sds-agent-inotify"
    thread.start()
  }

  /// Watches `directories` too (already watched ones are kept); a directory that does not exist
  /// yet is skipped and can be added later.
  func watch(_ directories: Set<String>) {
    let mask = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY)
    let new = self.watched.withLock { directories.subtracting($0) }
    for directory in new where inotify_add_watch(self.descriptor, directory, mask) >= 0 {
      _ = self.watched.withLock { $0.insert(directory) }
    }
  }

  func stop() {
    self.stopped.store(true, ordering: .releasing)
  }

  private func readEvents() {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    var pollDescriptor = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
    while !self.stopped.load(ordering: .acquiring) {
      guard poll(&pollDescriptor, 1, 500) > 0 else { continue }
      let count = buffer.withUnsafeMutableBytes { read(self.descriptor, $0.baseAddress, $0.count) }
      if count > 0 { self.onChange() }
    }
    close(self.descriptor)
  }
}
