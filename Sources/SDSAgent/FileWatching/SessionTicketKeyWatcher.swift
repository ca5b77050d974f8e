import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Serves each `session-ticket-keys` entry as one node-wide row: the keys of the current epoch,
/// derived from the seed file, pushed at each epoch boundary (one `DeadlineTimer` for every
/// entry, at the earliest boundary) and at once when the seed file changes. A seed that cannot
/// be used keeps the last good keys, with a log line and `sds_agent_session_ticket_seed_errors_total`.
/// Keys never reach a log: the fingerprint and the epoch stand for them.
package final class SessionTicketKeyWatcher<C: Clock>: Service, SessionTicketKeyProvider, Sendable
where C.Duration == Duration {
  private struct Row {
    let source: SessionTicketKeySource
    var seed: SessionTicketSeed
    var keys: SessionTicketKeys
  }

  private let rows: Mutex<[Row]>
  /// Held across a change and its install, so that two changes reach the node in order.
  private let installing = Mutex(())
  /// Each seed file as last looked at: an unchanged file is not read (nor its error logged) again.
  private let seen = Mutex<[String: FileSignature?]>([:])
  private let node: NodeSecrets
  private let checksCallers: Bool
  private let counters: AgentCounters
  private let logger: Logger
  private let clock: C
  private let now: @Sendable () -> Date
  private let watch: FileWatch
  private let settle: Duration
  private let recheck: Duration
  /// Never signalled: the timer wakes at the next boundary only.
  private let boundary = WakeSignal()

  /// Reads every seed now and serves its keys; a seed that cannot be used refuses the start,
  /// naming the setting.
  package init(
    sources: [SessionTicketKeySource], node: NodeSecrets, checksCallers: Bool, counters: AgentCounters,
    watching files: FileWatchService, clock: C, now: @escaping @Sendable () -> Date, logger: Logger,
    settle: Duration = .milliseconds(150), recheck: Duration = .seconds(10)
  ) throws(ConfigurationError) {
    let date = now()
    var rows: [Row] = []
    for source in sources {
      switch SessionTicketSeedFile.read(source.seed) {
      case .success(let seed):
        rows.append(
          Row(source: source, seed: seed, keys: SessionTicketKeys(seed: seed, epoch: source.schedule.epoch(at: date))))
      case .failure(let error):
        throw ConfigurationError(
          key: SessionTicketKeySource.key, value: "seed of \(source.name): \(source.seed)",
          allowed: "a seed file of at least \(SessionTicketSeed.minimumLength) bytes readable by its owner only "
            + "(\(error.explanation))", cause: error)
      }
    }
    self.rows = Mutex(rows)
    self.node = node
    self.checksCallers = checksCallers
    self.counters = counters
    self.logger = logger
    self.clock = clock
    self.now = now
    self.watch = files.follow(Set(sources.map(\.seed)))
    self.settle = settle
    self.recheck = recheck
    for row in rows {
      node.updateSessionTicketKeys(row.keys, named: row.source.name)
      self.log(row, "session ticket keys served")
    }
  }

  package func access(for caller: SPIFFEID) -> SessionTicketKeyAccess {
    let names = self.rows.withLock { $0.map { ($0.source.name, $0.source.callers) } }
    return SessionTicketKeyAccess(names: names, caller: caller, checksCallers: self.checksCallers)
  }

  /// The epoch and fingerprint each name serves now, for `/debug` and tests; never the keys.
  package var served: [(name: String, epoch: Int64, fingerprint: String)] {
    self.rows.withLock { $0.map { ($0.source.name, $0.keys.epoch, $0.keys.fingerprint) } }
  }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask {
          await self.watch.run(settle: self.settle, recheck: self.recheck, clock: self.clock) {
            self.readSeeds(onlyChanged: true)
            // Also after the wall clock jumped ahead of the timer's monotonic wait.
            self.advance()
          }
        }
        group.addTask {
          let timer = DeadlineTimer(clock: self.clock, wake: self.boundary) { self.nextBoundary() }
          for await _ in timer {
            self.advance()
          }
        }
      }
    }
  }

  /// The clock's instant of the earliest epoch boundary to come.
  private func nextBoundary() -> C.Instant? {
    let date = self.now()
    let boundaries = self.rows.withLock { $0.map { $0.source.schedule.nextBoundary(after: date) } }
    guard let next = boundaries.min() else { return nil }
    return self.clock.now.advanced(by: .milliseconds(Int64((next.timeIntervalSince(date) * 1000).rounded(.up))))
  }

  /// Serves each row's keys for the epoch it is in now.
  package func advance() {
    let date = self.now()
    self.update { row in
      let epoch = row.source.schedule.epoch(at: date)
      guard epoch != row.keys.epoch else { return false }
      row.keys = SessionTicketKeys(seed: row.seed, epoch: epoch)
      return true
    } log: {
      self.log($0, "session ticket keys rotated to a new epoch")
    }
  }

  /// Reads each seed file (with `onlyChanged`, each one changed since it was last looked at); a
  /// new seed replaces its keys at once.
  package func readSeeds(onlyChanged: Bool = false) {
    let date = self.now()
    let sources = self.rows.withLock { $0.map(\.source) }
    let changed = self.seen.withLock { seen in
      sources.map { source in
        let signature = FileSignature(path: source.seed)
        defer { seen[source.seed] = signature }
        return !onlyChanged || seen[source.seed] != .some(signature)
      }
    }
    let seeds = zip(sources, changed).map { source, changed in
      changed ? SessionTicketSeedFile.read(source.seed) : nil
    }
    for (source, seed) in zip(sources, seeds) {
      guard case .failure(let error) = seed else { continue }
      self.counters.increment(.sessionTicketSeedErrors, labels: [("keys", source.name), ("reason", error.reason)])
      self.logger.error(
        "session ticket seed not usable; the last good keys stay served",
        metadata: [
          "keys": "\(source.name)", "seed": "\(source.seed)", "reason": "\(error.reason)",
          "detail": "\(BoundedText(error.explanation, limit: 200))",
        ])
    }
    self.update { row in
      guard let index = sources.firstIndex(of: row.source), case .success(let seed)? = seeds[index], seed != row.seed
      else { return false }
      row.seed = seed
      row.keys = SessionTicketKeys(seed: seed, epoch: row.source.schedule.epoch(at: date))
      return true
    } log: {
      self.log($0, "session ticket seed replaced; every ticket issued under the old seed can no longer resume")
    }
  }

  private func update(_ change: (inout Row) -> Bool, log: (Row) -> Void) {
    self.installing.withLock { _ in
      let changed = self.rows.withLock { rows in
        var changed: [Row] = []
        for index in rows.indices where change(&rows[index]) {
          changed.append(rows[index])
        }
        return changed
      }
      for row in changed {
        self.node.updateSessionTicketKeys(row.keys, named: row.source.name)
        log(row)
      }
    }
  }

  private func log(_ row: Row, _ message: Logger.Message) {
    self.logger.info(
      message,
      metadata: [
        "keys": "\(row.source.name)", "epoch": "\(row.keys.epoch)", "fingerprint": "\(row.keys.fingerprint)",
      ])
  }
}
