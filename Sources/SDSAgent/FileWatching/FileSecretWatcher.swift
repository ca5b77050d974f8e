import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Serves the secrets the operator names from files, and the `file-cert:` and `file-root:` names
/// callers ask for, and follows the files: the `FileWatchService` says when to look; a change is
/// read `settle` after the first event (so a pair written as two files in quick succession is
/// read as a pair), checked (the key matches, the chain is in order, the leaf is valid now) and
/// pushed. Every `safetyInterval` the files are looked at regardless, and on-the-fly names nobody
/// holds any more are dropped; both delays run on the injected clock. A missing, torn or bad pair
/// keeps the last good secret, with a log line and `sds_agent_file_secret_errors_total{secret,reason}`.
/// Key files writable by others are refused; readable by others, served with a warning.
///
/// Every read goes through `SecretFileReader`: by real path, confined to the directories a
/// name may read, never the agent's own key material. Files are read on the watcher's own task,
/// never on the caller's thread, except by `readNow`, which a `FetchSecrets` awaits off the
/// event loop.
package final class FileSecretWatcher: Service, Sendable {
  package struct Entry: Sendable {
    package let source: FileSecretSource
    /// For an on-the-fly name: where each of its files must really lie. Nil for a named secret.
    let confinement: [[String]]?
    fileprivate var signature: [FileSignature?] = []
    fileprivate var isRead = false
    package fileprivate(set) var content: FileSecretContent?
    package fileprivate(set) var failure: FileSecretError?
    package var lastError: String? { self.failure?.description }

    /// The secret's name as logs and metrics show it: an on-the-fly name comes from a client.
    var shownName: String {
      self.confinement == nil ? self.source.name : BoundedText(self.source.name).description
    }

    /// A metric label from a closed set: the operator's names, or the on-the-fly kind.
    var label: String {
      guard self.confinement != nil else { return self.source.name }
      return self.source.name.hasPrefix(OnTheFlyFileSecret.rootPrefix)
        ? OnTheFlyFileSecret.rootPrefix : OnTheFlyFileSecret.certificatePrefix
    }
  }

  private struct State {
    var named: [Entry]
    var onTheFly: [String: Entry] = [:]
    var table: OnTheFlyFileTable
    var policy: OnTheFlyFilePolicy
    var keyMaterial: AgentKeyMaterial

    var entries: [Entry] { self.named + self.onTheFly.values.sorted { $0.source.name < $1.source.name } }

    func entry(_ key: Key) -> Entry? {
      switch key {
      case .named(let name): self.named.first { $0.source.name == name }
      case .onTheFly(let name): self.onTheFly[name]
      }
    }

    mutating func update(_ key: Key, _ body: (inout Entry) -> Void) {
      switch key {
      case .named(let name):
        if let index = self.named.firstIndex(where: { $0.source.name == name }) { body(&self.named[index]) }
      case .onTheFly(let name):
        if self.onTheFly[name] != nil { body(&self.onTheFly[name]!) }
      }
    }
  }

  private enum Key: Sendable, Hashable {
    case named(String)
    case onTheFly(String)
  }

  private let state: Mutex<State>
  private let table: IdentityTable
  private let counters: AgentCounters
  private let settle: Duration
  private let safetyInterval: Duration
  private let clock: any Clock<Duration>
  private let logger: Logger
  private let now: @Sendable () -> ContinuousClock.Instant
  /// The files of every secret served, followed.
  private let watch: FileWatch
  /// Signalled when a stream names an on-the-fly secret not read yet.
  private let added = WakeSignal()

  package init(
    sources: [FileSecretSource], policy: OnTheFlyFilePolicy = OnTheFlyFilePolicy(), keyMaterial: AgentKeyMaterial,
    table: IdentityTable, counters: AgentCounters, onTheFly: OnTheFlyFileTable = OnTheFlyFileTable(),
    watching files: FileWatchService, clock: any Clock<Duration> = ContinuousClock(),
    settle: Duration = .milliseconds(150), safetyInterval: Duration = .seconds(10), logger: Logger,
    now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
  ) {
    self.state = Mutex(
      State(
        named: sources.map { Entry(source: $0, confinement: nil) }, table: onTheFly, policy: policy,
        keyMaterial: keyMaterial))
    self.table = table
    self.counters = counters
    self.settle = settle
    self.safetyInterval = safetyInterval
    self.clock = clock
    self.logger = logger
    self.now = now
    self.watch = files.follow(Set(sources.flatMap(\.paths)))
    self.check(force: true)
  }

  package var current: [Entry] { self.state.withLock { $0.entries } }

  /// The directories watched for the files served now.
  var watchedDirectories: Set<String> { self.watch.directories }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask {
          await self.watch.run(settle: self.settle, recheck: self.safetyInterval, clock: self.clock) {
            self.check(force: false)
          }
        }
        // A name a stream asks for is read at once, without waiting for the settle delay.
        while !Task.isCancelled {
          await self.added.wait()
          guard !Task.isCancelled else { break }
          self.check(force: false, onlyUnread: true)
        }
        group.cancelAll()
      }
    }
  }

  /// Takes reloaded sources and rules: every file is read again; on-the-fly names stay while
  /// their paths are still allowed.
  package func reconfigure(_ sources: [FileSecretSource], policy: OnTheFlyFilePolicy, keyMaterial: AgentKeyMaterial) {
    self.state.withLock { state in
      state.policy = policy
      state.keyMaterial = keyMaterial
      state.named = sources.map { source in
        state.named.first { $0.source == source } ?? Entry(source: source, confinement: nil)
      }
      for (name, entry) in state.onTheFly {
        guard let secret = try? OnTheFlyFileSecret(parsing: name, directories: policy.directories) else {
          state.onTheFly[name] = nil
          continue
        }
        state.onTheFly[name] = Entry(
          source: entry.source, confinement: secret.paths.map(policy.confinement(of:)), content: entry.content)
      }
    }
    self.check(force: true)
  }

  /// Reads the secrets whose files changed (all with `force`; with `onlyUnread`, only the
  /// on-the-fly names never read), outside the lock, and serves what changed.
  func check(force: Bool, onlyUnread: Bool = false, names: Set<String>? = nil) {
    let now = Date()
    let instant = self.now()
    let (plan, keyMaterial, expiredServed) = self.state.withLock {
      state -> ([(Key, Entry)], AgentKeyMaterial, Bool) in
      var expiredServed = false
      for name in state.table.expire(now: instant) where state.onTheFly.removeValue(forKey: name)?.content != nil {
        expiredServed = true
      }
      self.watch.follow(Set(state.entries.flatMap(\.source.paths)))
      var plan: [(Key, Entry)] =
        onlyUnread || names != nil ? [] : state.named.map { (.named($0.source.name), $0) }
      for (name, entry) in state.onTheFly where !onlyUnread || !entry.isRead {
        if let names, !names.contains(name) { continue }
        plan.append((.onTheFly(name), entry))
      }
      return (plan, state.keyMaterial, expiredServed)
    }
    guard !plan.isEmpty || force || expiredServed else { return }
    // The key material is looked at only when something is read.
    var reader: SecretFileReader?
    var results: [(Key, [FileSignature?], Result<(FileSecretContent, String?), FileSecretError>?)] = []
    for (key, entry) in plan {
      let signature = entry.source.paths.map(FileSignature.init(path:))
      let changed = force || !entry.isRead || signature != entry.signature
      guard changed else {
        results.append((key, signature, nil))
        continue
      }
      let current = reader ?? SecretFileReader(keyMaterial: keyMaterial.snapshot())
      reader = current
      results.append((key, signature, Self.read(entry, reader: current, now: now)))
    }
    var failures: [(Entry, FileSecretError)] = []
    var warnings: [String] = []
    self.state.withLock { state in
      var changed = false
      for (key, signature, result) in results {
        guard let result else { continue }
        state.update(key) { entry in
          entry.signature = signature
          entry.isRead = true
          switch result {
          case .success(let (content, warning)):
            if let warning { warnings.append(warning) }
            entry.failure = nil
            if content != entry.content {
              entry.content = content
              changed = true
              self.logger.info(
                "serving a secret from files",
                metadata: ["secret": "\(entry.shownName)", "serial": "\(content.serial)"])
            }
          case .failure(let error):
            entry.failure = error
            failures.append((entry, error))
          }
        }
        if case .onTheFly(let name) = key {
          let found: OnTheFlyFileTable.State =
            if case .failure(let error) = result, error.reason == .missing { .missing } else { .present }
          state.table.record(name, found, now: instant)
          if state.table.rows[name] == nil, state.onTheFly.removeValue(forKey: name)?.content != nil { changed = true }
        }
      }
      // Installed under the lock: a reader that finds an entry read (`readNow`) finds it served,
      // and two checks racing install in the order they applied.
      if changed || force || expiredServed {
        self.table.installFiles(
          Dictionary(
            state.entries.compactMap { entry in entry.content.map { (entry.source.name, $0) } },
            uniquingKeysWith: { a, _ in a }))
      }
      // Under the lock too, so that two checks racing leave the files of the later one followed.
      self.watch.follow(Set(state.entries.flatMap(\.source.paths)))
    }
    for warning in warnings {
      self.logger.warning("\(warning)")
    }
    for (entry, error) in failures {
      self.counters.increment(.fileSecretErrors, labels: [("secret", entry.label), ("reason", error.reason.rawValue)])
      let metadata: Logger.Metadata = [
        "secret": "\(entry.shownName)", "reason": "\(error.reason.rawValue)", "error": "\(error.message)",
      ]
      let message: Logger.Message =
        entry.content == nil
        ? "cannot serve a secret from files; it is served as soon as good files appear"
        : "cannot use the changed files; still serving the last good secret"
      // A client's name for files that do not exist is the client's business, not the operator's.
      if entry.confinement != nil, error.reason == .missing {
        self.logger.debug(message, metadata: metadata)
      } else {
        self.logger.warning(message, metadata: metadata)
      }
    }
  }
}

extension FileSecretWatcher: FileSecretProvider {
  package func access(for caller: SPIFFEID) -> FileSecretAccess {
    self.state.withLock { state in
      var access = FileSecretAccess(onTheFly: state.policy)
      for entry in state.named {
        if !state.policy.checksCallers || entry.source.callers.contains(caller) {
          access.allowed.insert(entry.source.name)
        } else {
          access.withheld.insert(entry.source.name)
        }
      }
      return access
    }
  }

  package func hold(_ secrets: [OnTheFlyFileSecret], by holder: UInt64?, caller: SPIFFEID) -> [String] {
    let now = self.now()
    let (refused, added) = self.state.withLock { state -> ([String], Bool) in
      let refused = state.table.hold(secrets, by: holder, caller: caller, now: now)
      var added = false
      for secret in secrets where state.onTheFly[secret.name] == nil && state.table.rows[secret.name] != nil {
        state.onTheFly[secret.name] = Entry(
          source: FileSecretSource(secret), confinement: secret.paths.map(state.policy.confinement(of:)))
        added = true
      }
      return (refused, added)
    }
    if added { self.added.signal() }
    return refused
  }

  package func release(_ holder: UInt64) {
    let now = self.now()
    self.state.withLock { $0.table.release(holder, now: now) }
  }

  package func readNow(_ secrets: [OnTheFlyFileSecret]) async -> [String: FileSecretError] {
    let names = Set(secrets.map(\.name))
    let unread = self.state.withLock { state in names.contains { state.onTheFly[$0]?.isRead == false } }
    if unread { self.check(force: false, onlyUnread: true, names: names) }
    return self.state.withLock { state in
      var failures: [String: FileSecretError] = [:]
      for name in names {
        guard let entry = state.onTheFly[name] else {
          failures[name] = FileSecretError(
            .missing, "the files are not followed (too many names whose files are missing)")
          continue
        }
        if entry.content == nil, let failure = entry.failure { failures[name] = failure }
      }
      return failures
    }
  }
}
