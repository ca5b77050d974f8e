import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// The operator's CA files (`ca-cert`, `ca-key`, `ca-chain`), watched: when they change, they
/// are read `settle` after the change (so a pair written one file after the other, or swapped
/// at once by a Kubernetes `..data` rename, is read together) and, if they hold a usable CA,
/// handed to `replace` as a reload would. Files that cannot be used (unreadable, a key that does
/// not match its certificate, a key others may read) keep the running CA, with a log line and
/// `sds_agent_operator_ca_errors_total{reason}`; once both files match, the new CA is adopted.
/// Every file is looked at every `recheck` regardless, on the injected clock.
package final class OperatorCAFilesWatcher: Service, Sendable {
  /// Where the operator's CA lies.
  package struct Files: Sendable, Equatable {
    package let certificate: String
    package let key: String
    package let chain: String?

    package init(certificate: String, key: String, chain: String?) {
      self.certificate = certificate
      self.key = key
      self.chain = chain
    }

    /// The operator's files `source` names, if it names any.
    package init?(_ source: AgentConfiguration.CASource) {
      guard let files = source.files else { return nil }
      self.init(certificate: files.certificate, key: files.key, chain: files.chain)
    }

    var paths: [String] { [self.certificate, self.key] + (self.chain.map { [$0] } ?? []) }
  }

  /// Why files were refused, a closed set for the metric label.
  package enum Reason: String, Sendable {
    /// A file is missing, unreadable, or a key others may read.
    case unreadable
    /// A file is not PEM this agent reads.
    case unparsable
    /// The certificate is not a usable CA for its key: a mismatch, an expired or non-CA certificate.
    case unusable
  }

  private struct State {
    var files: Files
    var seen: [FileSignature?]
  }

  private let state: Mutex<State>
  private let replace: @Sendable (CAMaterial) async throws -> Void
  private let counters: AgentCounters
  private let watch: FileWatch
  private let clock: any Clock<Duration>
  private let settle: Duration
  private let recheck: Duration
  private let logger: Logger

  /// Follows `files`, whose CA is the one signing now.
  package init(
    files: Files, replace: @escaping @Sendable (CAMaterial) async throws -> Void, counters: AgentCounters,
    watching service: FileWatchService, clock: any Clock<Duration> = ContinuousClock(),
    settle: Duration = .milliseconds(150), recheck: Duration = .seconds(10), logger: Logger
  ) {
    self.state = Mutex(State(files: files, seen: files.paths.map(FileSignature.init(path:))))
    self.replace = replace
    self.counters = counters
    self.watch = service.follow(Set(files.paths))
    self.clock = clock
    self.settle = settle
    self.recheck = recheck
    self.logger = logger
  }

  /// The files followed now.
  package var files: Files { self.state.withLock { $0.files } }

  /// The directories watched for the files followed now.
  var watchedDirectories: Set<String> { self.watch.directories }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await self.watch.run(settle: self.settle, recheck: self.recheck, clock: self.clock) {
        await self.check()
      }
    }
  }

  /// Follows the files a reload names; the reload itself has read them.
  package func reconfigure(_ files: Files) {
    self.state.withLock { state in
      state = State(files: files, seen: files.paths.map(FileSignature.init(path:)))
    }
    self.watch.follow(Set(files.paths))
  }

  /// Reads the files if any of them changed and hands a usable CA to `replace`.
  func check() async {
    let (files, changed) = self.state.withLock { state in
      let signature = state.files.paths.map(FileSignature.init(path:))
      defer { state.seen = signature }
      return (state.files, signature != state.seen)
    }
    guard changed else { return }
    let material: CAMaterial
    do {
      material = try CAStore.loadOperatorFiles(certificate: files.certificate, key: files.key, chain: files.chain)
    } catch {
      let reason = Self.reason(error)
      self.counters.increment(.operatorCAErrors, labels: [("reason", reason.rawValue)])
      self.logger.warning(
        "cannot use the changed CA files; the running CA keeps signing",
        metadata: ["reason": "\(reason.rawValue)", "error": "\(BoundedText("\(error)", limit: 512))"])
      return
    }
    do {
      try await self.replace(material)
    } catch {
      self.logger.error(
        "cannot serve the trust bundle of the changed CA files", metadata: ["error": "\(BoundedText("\(error)"))"])
    }
  }

  static func reason(_ error: any Error) -> Reason {
    switch (error as? AgentError)?.cause {
    case nil: .unreadable
    case is CAMaterialError: .unusable
    default: .unparsable
    }
  }
}
