import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Fetch mode's `ca-root` file, watched: a change is pushed in `ROOTCA` at once and the
/// connection to the CA is made again with the new roots, without touching the certificates
/// served. A bad file keeps the last good roots, with a log line and
/// `sds_agent_trust_bundle_errors_total`. The file is read `settle` after a change and looked at
/// every `recheck` regardless, on the injected clock.
package final class CARootsWatcher: Service, Sendable {
  private let path: String
  private let ca: FollowingCA
  /// Connects to the CA again with the file's roots.
  private let reconnect: @Sendable () throws -> Void
  private let counters: AgentCounters
  private let trustDomain: String
  private let watch: FileWatch
  private let clock: any Clock<Duration>
  private let settle: Duration
  private let recheck: Duration
  private let logger: Logger
  private let seen: Mutex<FileSignature?>

  package init(
    path: String, ca: FollowingCA, reconnect: @escaping @Sendable () throws -> Void, counters: AgentCounters,
    trustDomain: String, watching files: FileWatchService, clock: any Clock<Duration> = ContinuousClock(),
    settle: Duration = .milliseconds(150), recheck: Duration = .seconds(10), logger: Logger
  ) {
    self.path = path
    self.ca = ca
    self.reconnect = reconnect
    self.counters = counters
    self.trustDomain = trustDomain
    self.watch = files.follow([path])
    self.clock = clock
    self.settle = settle
    self.recheck = recheck
    self.logger = logger
    self.seen = Mutex(FileSignature(path: path))
  }

  /// The roots in the `ca-root` file, or an error naming the file.
  package static func roots(in path: String) throws -> TrustBundle {
    switch BundleFile.read(path, now: Date()) {
    case .success(let bundle): return bundle
    case .failure(let failure):
      throw AgentError(.caFiles, "the CA roots file \(path) (ca-root) cannot be used: \(failure.message)")
    }
  }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await self.watch.run(settle: self.settle, recheck: self.recheck, clock: self.clock) {
        self.check(force: false)
      }
    }
  }

  /// Re-reads the file if it changed (or with `force`, on reload).
  package func check(force: Bool) {
    let signature = FileSignature(path: self.path)
    let changed = self.seen.withLock { seen in
      defer { seen = signature }
      return seen != signature
    }
    guard changed || force else { return }
    switch BundleFile.read(self.path, now: Date()) {
    case .success(let bundle):
      do {
        try self.ca.setFileRoots(bundle.roots)
        try self.reconnect()
      } catch {
        self.logger.error("cannot use the new CA roots", metadata: ["file": "\(self.path)", "error": "\(error)"])
      }
    case .failure(let failure):
      self.counters.increment(
        .trustBundleErrors, labels: [("trust_domain", self.trustDomain), ("reason", failure.reason)])
      self.logger.warning(
        "cannot use the CA roots file; keeping the last good roots",
        metadata: ["file": "\(self.path)", "reason": "\(failure.reason)", "error": "\(failure.message)"])
    }
  }
}
