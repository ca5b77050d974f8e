import Foundation
import Logging
import ServiceLifecycle

/// Owns the issuance and rotation of every identity in the `IdentityTable`: one service, one
/// task group, one timer. The timer wakes at the table's earliest deadline (a renewal, a retry,
/// an expiry, an idle eviction) or when the table changes; each wake-up takes the work due and
/// runs issuances as child tasks; it also makes the changes of the table's `TrustSchedule` when
/// they are due (a root retiring or expiring). The timer ends with graceful shutdown.
package struct IdentitySupervisor<C: Clock>: Service, CustomStringConvertible where C.Duration == Duration {
  package let table: IdentityTable
  private let authority: any CertificateAuthority
  private let counters: AgentCounters
  private let clock: C
  private let now: @Sendable () -> Date
  private let random: @Sendable () -> Double
  private let wallClockCheck: Duration?
  private let logger: Logger

  /// - Parameters:
  ///   - now: wall-clock time, which certificates are about; `clock` measures the waits.
  ///   - random: a sample in `0...1` for jitter and backoff.
  ///   - wallClockCheck: how often the table is looked at even when no deadline is due, so that a
  ///     wall clock that jumped (a suspend and resume, a clock step) is noticed: `clock` measures
  ///     the waits, but certificates expire by the wall clock.
  package init(
    table: IdentityTable,
    authority: any CertificateAuthority,
    counters: AgentCounters,
    clock: C,
    now: @escaping @Sendable () -> Date,
    random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
    wallClockCheck: Duration? = IdentitySupervisor.defaultWallClockCheck,
    logger: Logger
  ) {
    self.table = table
    self.authority = authority
    self.counters = counters
    self.clock = clock
    self.now = now
    self.random = random
    self.wallClockCheck = wallClockCheck
    self.logger = logger
  }

  package var description: String { "IdentitySupervisor" }

  /// How often the wall clock is checked by default.
  package static var defaultWallClockCheck: Duration { .seconds(30) }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.table.wake) { [table, clock, now, wallClockCheck] in
      let due = table.nextDeadline().map { Duration.seconds(max(-1, $0.timeIntervalSince(now()))) }
      let wait = [due, wallClockCheck].compactMap { $0 }.min()
      return wait.map { clock.now.advanced(by: $0) }
    }
    // The timer reads the deadline lazily, after the work of the previous tick was taken, so it
    // is iterated directly (no merged sequence that would read ahead) and cancelled on shutdown.
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        for await _ in timer {
          self.performDueTrustChanges()
          for assignment in self.table.takeWork(now: self.now()) {
            group.addTask { await self.perform(assignment) }
          }
        }
        group.cancelAll()
      }
    }
    self.table.close()
  }

  /// Does the work due for `identity` now, in the calling task: the pinned identity's first
  /// issuance before the services run.
  package func performDueWork(for identity: SPIFFEID) async throws(CertificateAuthorityError) {
    for assignment in self.table.takeWork(now: self.now(), only: identity) {
      await self.perform(assignment)
    }
    if case .failing(let failure) = self.table.lifecycle(of: identity)?.phase {
      throw CertificateAuthorityError(failure.code, failure.message)
    }
  }

  /// Makes the changes of the trust schedule that are due.
  private func performDueTrustChanges() {
    let now = self.now()
    for (key, change) in self.table.trustSchedule.takeDue(now: now) {
      do throws(CertificateAuthorityError) {
        if let note = try change.perform(now) {
          self.logger.notice(Logger.Message(stringLiteral: note), metadata: ["change": "\(key)"])
        }
      } catch {
        self.logger.error("cannot serve the trust bundle", metadata: ["change": "\(key)", "error": "\(error)"])
      }
    }
  }

  private func perform(_ assignment: IdentityTable.Assignment) async {
    let identity = assignment.identity
    switch assignment.work {
    case .issue(let credential, let retries):
      let result = await self.issue(identity, credential: credential, settings: assignment.settings)
      let validity = result.flatMap { issued -> Result<IdentityLifecycle.Validity, CertificateAuthorityError> in
        do throws(CertificateAuthorityError) {
          try self.table.serve(issued, in: assignment.cache)
        } catch {
          return .failure(error)
        }
        let svid = issued.certifiedKey
        return .success(.init(serial: svid.leaf.serialHex, issuedAt: svid.issuedAt, notAfter: svid.notAfter))
      }
      let now = self.now()
      let lifecycle = self.table.finish(
        identity, validity, credential: credential, retries: retries, now: now, sample: self.random())
      if case .failure(let error) = validity {
        self.logFailure(
          error, of: identity, served: assignment.cache.current.svid, retryAt: lifecycle?.retryAt, now: now)
      }
    case .withdraw(let serial):
      assignment.cache.withdrawSVID()
      self.counters.increment(.svidsWithdrawn)
      self.logger.error(
        "certificate expired before it could be renewed; no longer serving it",
        metadata: ["identity": "\(identity)", "serial": "\(serial)"])
    case .evict:
      self.logger.info("dropped an idle workload identity", metadata: ["identity": "\(identity)"])
    }
  }

  private func logFailure(
    _ error: CertificateAuthorityError, of identity: SPIFFEID, served: CertifiedKey?, retryAt: Date?, now: Date
  ) {
    var metadata: Logger.Metadata = ["identity": "\(identity)", "error": "\(error)"]
    if let retryAt {
      metadata["retry_in"] = "\(Duration.seconds(max(0, retryAt.timeIntervalSince(now))))"
    }
    if let served, served.isValid(at: now) {
      metadata["serial"] = "\(served.leaf.serialHex)"
      metadata["expires"] = "\(served.notAfter.formatted(.iso8601))"
      self.logger.error("could not renew the certificate; still serving the current one", metadata: metadata)
    } else {
      self.logger.error(
        retryAt == nil ? "could not issue a certificate" : "could not issue a certificate; retrying", metadata: metadata
      )
    }
  }

  /// Generates a key and has the CA certify it, counting and timing the attempt.
  private func issue(
    _ identity: SPIFFEID, credential: CACredential, settings: IdentitySettings
  ) async -> Result<IssuedSVID, CertificateAuthorityError> {
    let key: WorkloadPrivateKey
    do {
      key = try settings.keyType.generate()
    } catch {
      return .failure(
        CertificateAuthorityError(.signingFailed, "generating a \(settings.keyType.rawValue) key failed", cause: error))
    }
    let started = ContinuousClock.now
    do {
      let issued = try await self.authority.certify(
        identity: identity, privateKey: key, ttl: settings.ttl, now: self.now(), credential: credential)
      self.counters.recordIssuance(duration: ContinuousClock.now - started, succeeded: true)
      self.counters.increment(.certificatesIssued)
      self.logger.info(
        "issued certificate",
        metadata: [
          "identity": "\(identity)", "serial": "\(issued.certifiedKey.leaf.serialHex)",
          "not_after": "\(issued.certifiedKey.notAfter.formatted(.iso8601))",
        ])
      return .success(issued)
    } catch {
      self.counters.recordIssuance(duration: ContinuousClock.now - started, succeeded: false)
      self.counters.increment(.issuanceFailures, labels: [("code", error.code.rawValue)])
      return .failure(error)
    }
  }
}
