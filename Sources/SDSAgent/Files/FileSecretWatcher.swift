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

/// Serves the secrets the operator names from files, and follows the files: inotify on their
/// directories (and on the directories their symlinks point into) says when to look; a change is
/// read `settle` after the first event (so a pair written as two files in quick succession is read
/// as a pair), checked (the key matches, the chain is in order, the leaf is valid now) and pushed. A
/// missing, torn or bad pair keeps the last good secret, with a log line and
/// `sds_agent_file_secret_errors_total{secret,reason}`. Key files writable by others are refused;
/// readable by others, served with a warning.
public final class FileSecretWatcher: Service, Sendable {
  public struct Entry: Sendable {
    public let source: FileSecretSource
    fileprivate var signature: [FileSignature?] = []
    public fileprivate(set) var content: FileSecretContent?
    public fileprivate(set) var lastError: String?
  }

  private let entries: Mutex<[Entry]>
  /// Where `file-cert:` and `file-root:` names may point; whether callers are checked (node agent).
  private let policy: Mutex<(directories: [String], checksCallers: Bool)>
  /// The most on-the-fly names followed at once.
  public static let maximumOnTheFly = 256
  private let table: IdentityTable
  private let counters: AgentCounters
  private let settle: Duration
  private let safetyInterval: Duration
  private let logger: Logger
  /// Made with the first secret, so an agent without file secrets runs no inotify thread.
  private let watch = Mutex<DirectoryWatch?>(nil)
  private let changed = WakeSignal()

  public init(
    sources: [FileSecretSource], directories: [String] = [], checksCallers: Bool = false, table: IdentityTable,
    counters: AgentCounters, settle: Duration = .milliseconds(150),
    safetyInterval: Duration = .seconds(10), logger: Logger
  ) throws {
    self.entries = Mutex(sources.map { Entry(source: $0) })
    self.policy = Mutex((directories, checksCallers))
    self.table = table
    self.counters = counters
    self.settle = settle
    self.safetyInterval = safetyInterval
    self.logger = logger
    self.check(force: true)
  }

  public var current: [Entry] { self.entries.withLock { $0 } }

  public func run() async {
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask {
          // inotify may miss a directory created later: look now and then regardless.
          while !Task.isCancelled {
            try? await Task.sleep(for: self.safetyInterval)
            self.changed.signal()
          }
        }
        while !Task.isCancelled {
          await self.changed.wait()
          guard !Task.isCancelled else { break }
          try? await Task.sleep(for: self.settle)
          self.check(force: false)
        }
        group.cancelAll()
      }
    }
    self.watch.withLock { $0?.stop() }
  }

  /// Takes reloaded sources and directories: every file is read again; on-the-fly names stay
  /// while their paths are still allowed.
  public func reconfigure(_ sources: [FileSecretSource], directories: [String]) {
    self.policy.withLock { $0.directories = directories }
    self.entries.withLock { entries in
      let onTheFly = entries.filter { entry in
        OnTheFlyFileSecret.isOnTheFly(entry.source.name)
          && (try? OnTheFlyFileSecret(parsing: entry.source.name, directories: directories)) != nil
      }
      entries = sources.map { source in entries.first { $0.source == source } ?? Entry(source: source) } + onTheFly
    }
    self.check(force: true)
  }

  /// Reads the secrets whose files changed (all with `force`), and serves what changed.
  func check(force: Bool) {
    let now = Date()
    var failures: [(Entry, FileSecretError)] = []
    var warnings: [String] = []
    let (changed, directories, contents) = self.entries.withLock { entries in
      var changed = false
      var directories: Set<String> = []
      for index in entries.indices {
        let paths = entries[index].source.paths
        for path in paths {
          directories.insert((path as NSString).deletingLastPathComponent)
          if let real = realpath(path, nil) {
            directories.insert((String(cString: real) as NSString).deletingLastPathComponent)
            free(real)
          }
        }
        let signature = paths.map(FileSignature.init(path:))
        guard force || signature != entries[index].signature else { continue }
        entries[index].signature = signature
        switch Self.read(entries[index].source, now: now) {
        case .success(let (content, warning)):
          if let warning { warnings.append(warning) }
          entries[index].lastError = nil
          if content != entries[index].content {
            entries[index].content = content
            changed = true
            self.logger.info(
              "serving a secret from files",
              metadata: ["secret": "\(entries[index].source.name)", "serial": "\(content.serial)"])
          }
        case .failure(let error):
          entries[index].lastError = error.description
          failures.append((entries[index], error))
        }
      }
      let contents = Dictionary(
        entries.compactMap { entry in entry.content.map { (entry.source.name, $0) } }, uniquingKeysWith: { a, _ in a })
      return (changed, directories, contents)
    }
    if !directories.isEmpty {
      let watch = self.watch.withLock { watch -> DirectoryWatch? in
        if watch == nil { watch = try? DirectoryWatch(onChange: { [wake = self.changed] in wake.signal() }) }
        return watch
      }
      watch?.watch(directories)
    }
    for warning in warnings {
      self.logger.warning("\(warning)")
    }
    for (entry, error) in failures {
      self.counters.increment(
        .fileSecretErrors, labels: [("secret", entry.source.name), ("reason", error.reason.rawValue)])
      self.logger.warning(
        entry.content == nil
          ? "cannot serve a secret from files; it is served as soon as good files appear"
          : "cannot use the changed files; still serving the last good secret",
        metadata: ["secret": "\(entry.source.name)", "reason": "\(error.reason.rawValue)", "error": "\(error.message)"])
    }
    if changed || force { self.table.installFiles(contents) }
  }

  private static func read(_ source: FileSecretSource, now: Date) -> Result<
    (FileSecretContent, String?), FileSecretError
  > {
    do throws(FileSecretError) {
      switch source.files {
      case .tlsCertificate(let cert, let key, let ocsp):
        let warning = try Self.checkKeyPermissions(key)
        let content = try FileSecretContent.tlsCertificate(
          chainPEM: try Self.text(cert), keyPEM: try Self.text(key), ocspStaple: try ocsp.map(Self.bytes), now: now)
        return .success((content, warning.map { "secret \(source.name): \($0)" }))
      case .validationContext(let ca, let crl):
        return .success(
          (
            try FileSecretContent.validationContext(caPEM: try Self.text(ca), crl: try crl.map(Self.bytes), now: now),
            nil
          ))
      }
    } catch {
      return .failure(error)
    }
  }

  /// Refuses a key others may write; warns about one others may read.
  private static func checkKeyPermissions(_ path: String) throws(FileSecretError) -> String? {
    var info = stat()
    guard stat(path, &info) == 0 else { throw FileSecretError(.missing, "\(path) does not exist") }
    if info.st_mode & 0o022 != 0 {
      throw FileSecretError(.keyPermissions, "the key \(path) is writable by group or others; run chmod 600 \(path)")
    }
    if info.st_mode & 0o004 != 0 {
      return "the key \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); "
        + "run chmod 600 \(path), or in Kubernetes set the secret volume's defaultMode: 0400"
    }
    return nil
  }

  private static func bytes(_ path: String) throws(FileSecretError) -> Data {
    guard let signature = FileSignature(path: path) else { throw FileSecretError(.missing, "\(path) does not exist") }
    guard signature.size <= 1 << 20 else { throw FileSecretError(.tooLarge, "\(path) is larger than 1 MiB") }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw FileSecretError(.unreadable, "\(path) cannot be read: \(Errno.current)")
    }
    return data
  }

  private static func text(_ path: String) throws(FileSecretError) -> String {
    String(decoding: try self.bytes(path), as: UTF8.self)
  }
}

extension FileSecretWatcher: FileSecretProvider {
  public func access(for caller: SPIFFEID) -> FileSecretAccess {
    let (directories, checksCallers) = self.policy.withLock { $0 }
    var access = FileSecretAccess(directories: directories)
    for entry in self.entries.withLock({ $0 }) where !OnTheFlyFileSecret.isOnTheFly(entry.source.name) {
      if !checksCallers || entry.source.callers.contains(caller) {
        access.allowed.insert(entry.source.name)
      } else {
        access.withheld.insert(entry.source.name)
      }
    }
    return access
  }

  public func require(_ secret: OnTheFlyFileSecret) {
    let added = self.entries.withLock { entries -> Bool in
      guard !entries.contains(where: { $0.source.name == secret.name }),
        entries.filter({ OnTheFlyFileSecret.isOnTheFly($0.source.name) }).count < Self.maximumOnTheFly
      else { return false }
      entries.append(Entry(source: FileSecretSource(secret)))
      return true
    }
    if added { self.check(force: false) }
  }
}
