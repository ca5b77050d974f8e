import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The agent's one inotify descriptor and the one thread that reads it, for every file the agent
/// follows: file secrets, the `ca-root` file, federated bundles, the operator's CA files. A client
/// follows a set of files
/// (`follow(_:)`) and is signalled when an entry changes in a directory they lie in, or in a
/// directory their symlinks resolve into (a Kubernetes `..data` swap, certbot's `live/` links
/// into `archive/`). A directory that does not exist yet is stood in for by its nearest existing
/// ancestor, and watched itself once it appears. Signals coalesce: a client that is busy sees one.
///
/// Without inotify (the descriptor cannot be made) nothing is signalled; clients still look at
/// their files on their own slow re-check.
package final class FileWatchService: Service, CustomStringConvertible, Sendable {
  struct Follower {
    var paths: Set<String>
    /// The directories watched for this follower: each file's, its real file's, or the nearest
    /// existing ancestor of one that does not exist.
    var directories: Set<String> = []
    let changes: WakeSignal
  }

  struct State {
    var followers: [UInt64: Follower] = [:]
    var nextID: UInt64 = 0
    /// The directories each watch descriptor stands for (one directory reached by two paths
    /// shares a descriptor).
    var watches: [Int32: Set<String>] = [:]
    var isRunning = false
  }

  static let mask = UInt32(
    IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY | IN_DELETE_SELF
      | IN_MOVE_SELF)

  let descriptor: Int32
  /// Written to stop the reading thread.
  let stopPipe: (read: Int32, write: Int32)
  let state = Mutex(State())
  let logger: Logger
  /// Why there is no inotify descriptor (or no pipe to stop its thread), if there is none.
  let unavailable: String?

  package init(logger: Logger) {
    self.logger = logger
    self.descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
    var ends: [Int32] = [-1, -1]
    if self.descriptor < 0 {
      self.unavailable = "inotify_init1 failed: \(Errno.current)"
    } else if pipe(&ends) != 0 {
      self.unavailable = "pipe failed: \(Errno.current)"
    } else {
      self.unavailable = nil
      for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    }
    self.stopPipe = (ends[0], ends[1])
  }

  deinit {
    for descriptor in [self.descriptor, self.stopPipe.read, self.stopPipe.write] where descriptor >= 0 {
      close(descriptor)
    }
  }

  package var description: String { "FileWatchService" }

  /// Follows `paths` until the returned watch is released.
  package func follow(_ paths: Set<String>) -> FileWatch {
    let changes = WakeSignal()
    let id = self.state.withLock { state in
      state.nextID += 1
      state.followers[state.nextID] = Follower(paths: paths, changes: changes)
      self.resync(&state)
      return state.nextID
    }
    return FileWatch(service: self, id: id, changes: changes)
  }

  func replace(_ id: UInt64, with paths: Set<String>) {
    self.state.withLock { state in
      guard state.followers[id] != nil, state.followers[id]?.paths != paths else { return }
      state.followers[id]?.paths = paths
      self.resync(&state)
    }
  }

  func remove(_ id: UInt64) {
    self.state.withLock { state in
      guard state.followers.removeValue(forKey: id) != nil else { return }
      self.resync(&state)
    }
  }

  /// The directories `id` is watched through now (for tests).
  func directories(of id: UInt64) -> Set<String> {
    self.state.withLock { $0.followers[id]?.directories ?? [] }
  }

  /// Watches what the followers need now and nothing else; returns the followers whose
  /// directories changed (a directory appeared or a link points elsewhere): they look again.
  @discardableResult
  func resync(_ state: inout State) -> Set<UInt64> {
    guard self.descriptor >= 0 else { return [] }
    var added: [String: (directory: String, watch: Int32)?] = [:]
    var watches: [Int32: Set<String>] = [:]
    var moved: Set<UInt64> = []
    for (id, follower) in state.followers {
      var directories: Set<String> = []
      for wanted in Self.directories(of: follower.paths) {
        let found: (directory: String, watch: Int32)?
        if let known = added[wanted] {
          found = known
        } else {
          found = self.addWatch(nearest: wanted)
          added[wanted] = found
        }
        guard let found else { continue }
        directories.insert(found.directory)
        watches[found.watch, default: []].insert(found.directory)
      }
      if directories != follower.directories {
        state.followers[id]?.directories = directories
        moved.insert(id)
      }
    }
    for watch in state.watches.keys where watches[watch] == nil {
      inotify_rm_watch(self.descriptor, watch)
    }
    state.watches = watches
    return moved
  }

  /// Watches `directory`, or the nearest of its ancestors that exists.
  private func addWatch(nearest directory: String) -> (directory: String, watch: Int32)? {
    var directory = directory
    while true {
      let watch = inotify_add_watch(self.descriptor, directory, Self.mask)
      if watch >= 0 { return (directory, watch) }
      let parent = Self.parent(of: directory)
      guard parent != directory else { return nil }
      directory = parent
    }
  }

  /// Each file's directory and, through its symlinks, its real file's.
  static func directories(of paths: Set<String>) -> Set<String> {
    var directories: Set<String> = []
    for path in paths {
      directories.insert(Self.parent(of: path))
      if let real = realpath(path, nil) {
        directories.insert(Self.parent(of: String(cString: real)))
        free(real)
      }
    }
    return directories
  }

  static func parent(of path: String) -> String {
    let parent = (path as NSString).deletingLastPathComponent
    return parent.isEmpty ? "." : parent
  }
}
