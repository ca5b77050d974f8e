import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Keeps the federated trust domains' bundles as their files say. Read at start (a bad file
/// stops the start, naming it), re-read when a file changes and on reload. The
/// `FileWatchService` says when to look (an edit in place, a rename over it, a Kubernetes
/// `..data` symlink swap); a file is read `settle` after a change, and every file is looked at
/// every `recheck` regardless, on the injected clock. A bad, empty or vanished file keeps the
/// last good bundle, with a log line and `sds_agent_trust_bundle_errors_total`. A root that expires
/// while its file is unchanged leaves the bundle at its time, on the trust schedule (see
/// `FederatedBundleWatcher+Expiry`).
package final class FederatedBundleWatcher: Service, Sendable {
  /// One configured trust domain: its file, what `stat` last saw, its last good bundle.
  package struct Entry: Sendable {
    package let source: FederatedBundleSource
    fileprivate var signature: FileSignature?
    package internal(set) var bundle: TrustBundle?
    /// The JWT keys of the last good file (a SPIFFE bundle's `jwt-svid` keys), if it had any.
    package internal(set) var jwtKeys: [JWTPublicKey] = []
    /// Why the file's current content is not served, if it is not.
    package internal(set) var lastError: String?
  }

  let entries: Mutex<[Entry]>
  let table: IdentityTable
  private let counters: AgentCounters
  private let watch: FileWatch
  private let clock: any Clock<Duration>
  private let settle: Duration
  private let recheck: Duration
  let logger: Logger

  /// Reads every file; throws an error naming the first file that cannot be used.
  package init(
    sources: [FederatedBundleSource], table: IdentityTable, counters: AgentCounters,
    watching files: FileWatchService, clock: any Clock<Duration> = ContinuousClock(),
    settle: Duration = .milliseconds(150), recheck: Duration = .seconds(10), logger: Logger
  ) throws {
    var entries: [Entry] = []
    for source in sources {
      var entry = Entry(source: source)
      if let failure = Self.refresh(&entry, now: Date()) {
        throw AgentError(
          .trustBundle,
          "the trust bundle of \(source.trustDomain) in \(source.path) cannot be used: \(failure.message)")
      }
      entries.append(entry)
    }
    self.entries = Mutex(entries)
    self.table = table
    self.counters = counters
    self.watch = files.follow(Set(sources.map(\.path)))
    self.clock = clock
    self.settle = settle
    self.recheck = recheck
    self.logger = logger
    try self.publish()
    self.entries.withLock { self.scheduleExpiries(of: $0) }
  }

  /// Every configured trust domain, in the order configured.
  package var current: [Entry] { self.entries.withLock { $0 } }

  /// The directories watched for the files configured now.
  var watchedDirectories: Set<String> { self.watch.directories }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await self.watch.run(settle: self.settle, recheck: self.recheck, clock: self.clock) {
        self.check(force: false)
      }
    }
  }

  /// Takes reloaded sources: files are read again, new domains added, removed ones pushed as
  /// removed.
  package func reconfigure(_ sources: [FederatedBundleSource]) {
    self.entries.withLock { entries in
      let kept = Set(sources.map(\.trustDomain))
      for entry in entries where !kept.contains(entry.source.trustDomain) {
        self.table.trustSchedule.cancel(.federatedExpiry(entry.source.trustDomain))
      }
      entries = sources.map { source in
        entries.first { $0.source == source } ?? Entry(source: source)
      }
    }
    self.watch.follow(Set(sources.map(\.path)))
    self.check(force: true)
  }

  /// Re-reads the files that changed (all of them with `force`) and serves what changed.
  func check(force: Bool) {
    let now = Date()
    let (changed, failures) = self.entries.withLock { entries -> (Bool, [(Entry, BundleFile.Failure)]) in
      var changed = false
      var failures: [(Entry, BundleFile.Failure)] = []
      for index in entries.indices {
        let before = (entries[index].bundle, entries[index].jwtKeys)
        if !force, FileSignature(path: entries[index].source.path) == entries[index].signature { continue }
        if let failure = Self.refresh(&entries[index], now: now) {
          failures.append((entries[index], failure))
        } else if entries[index].bundle != before.0 || entries[index].jwtKeys != before.1 {
          changed = true
          self.logger.info(
            "trust bundle updated",
            metadata: [
              "trust_domain": "\(entries[index].source.trustDomain)", "file": "\(entries[index].source.path)",
              "roots": "\(entries[index].bundle?.roots.count ?? 0)", "jwt_keys": "\(entries[index].jwtKeys.count)",
            ])
        }
      }
      self.scheduleExpiries(of: entries)
      return (changed, failures)
    }
    self.report(failures)
    if changed || force {
      do {
        try self.publish()
      } catch {
        self.logger.error("cannot serve the federated trust bundles", metadata: ["error": "\(error)"])
      }
    }
  }

  /// Counts and logs files whose content is not served.
  func report(_ failures: [(Entry, BundleFile.Failure)]) {
    for (entry, failure) in failures {
      self.counters.increment(
        .trustBundleErrors, labels: [("trust_domain", entry.source.trustDomain.name), ("reason", failure.reason)])
      self.logger.warning(
        entry.bundle == nil
          ? "cannot use the trust bundle file; the trust domain is not served"
          : "cannot use the trust bundle file; still serving the last good bundle",
        metadata: [
          "trust_domain": "\(entry.source.trustDomain)", "file": "\(entry.source.path)", "reason": "\(failure.reason)",
          "error": "\(failure.message)",
        ])
    }
  }

  func publish() throws {
    let bundles = self.entries.withLock { entries in
      Dictionary(
        entries.compactMap { entry in entry.bundle.map { (entry.source.trustDomain, $0) } },
        uniquingKeysWith: { first, _ in first })
    }
    try self.table.installFederatedBundles(bundles)
    let jwtBundles = self.entries.withLock { entries in
      Dictionary(
        entries.compactMap { entry in
          entry.bundle == nil || entry.jwtKeys.isEmpty
            ? nil : (entry.source.trustDomain, JWTBundle(trustDomain: entry.source.trustDomain, keys: entry.jwtKeys))
        },
        uniquingKeysWith: { first, _ in first })
    }
    self.table.node.updateJWTBundles { $0.federated = jwtBundles }
  }

  /// Reads `entry`'s file into it; on failure keeps its bundle and returns why.
  private static func refresh(_ entry: inout Entry, now: Date) -> BundleFile.Failure? {
    entry.signature = FileSignature(path: entry.source.path)
    switch BundleFile.readDocument(entry.source.path, now: now) {
    case .success(let document):
      entry.bundle = document.trustBundle
      entry.jwtKeys = document.jwtKeys
      entry.lastError = nil
      return nil
    case .failure(let failure):
      entry.lastError = "\(failure.reason): \(failure.message)"
      return failure
    }
  }
}
