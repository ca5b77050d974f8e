import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Fetch mode's `ca-root` file, watched: a change is pushed in `ROOTCA` at once and the
/// connection to the CA is made again with the new roots, without touching the certificates
/// served. Also drops roots the CA stopped sending once their leaves have expired. A bad file
/// keeps the last good roots, with a log line and `sds_agent_trust_bundle_errors_total`.
public final class CARootsWatcher: Service, Sendable {
  private let path: String
  private let ca: FollowingCA
  private let counters: AgentCounters
  private let trustDomain: String
  private let interval: Duration
  private let logger: Logger
  private let seen: Mutex<FileSignature?>

  /// Reads the file; throws an error naming it if it cannot be used.
  public init(
    path: String, ca: FollowingCA, counters: AgentCounters, trustDomain: String, interval: Duration = .seconds(1),
    logger: Logger
  ) {
    self.path = path
    self.ca = ca
    self.counters = counters
    self.trustDomain = trustDomain
    self.interval = interval
    self.logger = logger
    self.seen = Mutex(FileSignature(path: path))
  }

  /// The roots in the `ca-root` file, or an error naming the file.
  public static func roots(in path: String) throws -> TrustBundle {
    switch BundleFile.read(path, now: Date()) {
    case .success(let bundle): return bundle
    case .failure(let failure):
      throw AgentError(.caFiles, "the CA roots file \(path) (ca-root) cannot be used: \(failure.message)")
    }
  }

  public func run() async {
    await cancelWhenGracefulShutdown {
      while !Task.isCancelled {
        try? await Task.sleep(for: self.interval)
        self.check(force: false)
      }
    }
  }

  /// Re-reads the file if it changed (or with `force`, on reload) and drops expired roots.
  public func check(force: Bool) {
    let now = Date()
    do {
      try self.ca.prune(now: now)
    } catch {
      self.logger.error("cannot serve the CA's trust bundle", metadata: ["error": "\(error)"])
    }
    let signature = FileSignature(path: self.path)
    let changed = self.seen.withLock { seen in
      defer { seen = signature }
      return seen != signature
    }
    guard changed || force else { return }
    switch BundleFile.read(self.path, now: now) {
    case .success(let bundle):
      do {
        try self.ca.setFileRoots(bundle.roots)
        try self.ca.client.reloadRoots()
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
