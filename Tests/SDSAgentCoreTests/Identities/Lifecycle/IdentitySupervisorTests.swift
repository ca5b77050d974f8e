import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// The supervisor driven by a manual clock: renewals, retries, expiry, idle eviction and reload
/// happen on its timer, with no real waiting.
@Suite(.timeLimit(.minutes(1))) struct IdentitySupervisorTests {
  static let workload = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  let clock = ManualClock(startDate: Fixtures.now)
  let counters = AgentCounters()
  let authority = TestAuthority(material: Fixtures.material)

  static func settings(ttl: Duration = .seconds(100)) -> IdentitySettings {
    IdentitySettings(
      keyType: .ecdsaP256, ttl: ttl, schedule: RotationSchedule(ratio: 0.5, jitter: 0),
      backoff: Backoff(initial: .seconds(4), maximum: .seconds(4)))
  }

  func makeSupervisor(ttl: Duration = .seconds(100), idleTimeout: Duration = .seconds(600)) -> IdentitySupervisor<
    ManualClock
  > {
    let clock = self.clock
    let table = IdentityTable(
      pinned: Fixtures.identity, template: Self.settings(ttl: ttl), idleTimeout: idleTimeout, now: clock.date)
    return IdentitySupervisor(
      table: table, authority: self.authority, counters: self.counters, clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
  }

  /// Runs the supervisor for the duration of `body`, then cancels it.
  func running(_ supervisor: IdentitySupervisor<ManualClock>, _ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await supervisor.run() }
      try await body()
      group.cancelAll()
    }
  }

  @Test func rotatesAtHalfTheLifetimeAndPushesTheNewSVID() async throws {
    let supervisor = self.makeSupervisor()
    let cache = supervisor.table.pinnedCache
    try await supervisor.performDueWork(for: Fixtures.identity)
    let first = try #require(cache.current.svid)
    try await self.running(supervisor) {
      await self.clock.sleeper(until: .seconds(50))
      self.clock.advance(by: .seconds(49))
      #expect(cache.current.svid?.leaf.serialNumber == first.leaf.serialNumber)
      self.clock.advance(by: .seconds(1))
      await cache.waitUntil { $0.svid?.leaf.serialNumber != first.leaf.serialNumber }
      let second = try #require(cache.current.svid)
      #expect(second.notAfter > first.notAfter)
      #expect(self.counters[.certificatesIssued] == 2)
      await self.clock.sleeper(until: .seconds(100))
      #expect(supervisor.table.lifecycle(of: Fixtures.identity)?.phase == .serving)
    }
  }

  @Test func keepsServingThroughAnOutageAndRenewsWhenTheCAReturns() async throws {
    let supervisor = self.makeSupervisor()
    let cache = supervisor.table.pinnedCache
    try await supervisor.performDueWork(for: Fixtures.identity)
    let first = try #require(cache.current.svid)
    self.authority.isFailing = true
    try await self.running(supervisor) {
      await self.clock.sleeper(until: .seconds(50))
      self.clock.advance(by: .seconds(50))
      // The renewal fails: the supervisor backs off while the current SVID stays served.
      await self.clock.sleeper(until: .seconds(54))
      #expect(self.counters[.issuanceFailures] == 1)
      guard case .failing(let failure) = supervisor.table.lifecycle(of: Fixtures.identity)?.phase else {
        Issue.record("the identity is not failing after a failed renewal")
        return
      }
      #expect(failure.code == .signingFailed)
      #expect(cache.current.svid?.leaf.serialNumber == first.leaf.serialNumber)
      self.authority.isFailing = false
      self.clock.advance(by: .seconds(4))
      await cache.waitUntil { $0.svid?.leaf.serialNumber != first.leaf.serialNumber }
      #expect(self.counters[.svidsWithdrawn] == 0)
    }
  }

  @Test func withdrawsAnSVIDThatExpiresUnrenewedAndRecovers() async throws {
    let supervisor = self.makeSupervisor(ttl: .seconds(10))
    let cache = supervisor.table.pinnedCache
    try await supervisor.performDueWork(for: Fixtures.identity)
    self.authority.isFailing = true
    try await self.running(supervisor) {
      // Renewal at 5 s fails; retries every 4 s (capped at the time left) until 10 s.
      for deadline in [5, 9, 10] {
        await self.clock.sleeper(until: .seconds(deadline))
        self.clock.advance(by: .seconds(deadline) - self.clock.now.offset)
      }
      await cache.waitUntil { $0.svid == nil }
      await self.counters.waitUntil { $0[.issuanceFailures] >= 3 }
      #expect(self.counters[.svidsWithdrawn] == 1)
      #expect(supervisor.table.lifecycle(of: Fixtures.identity)?.isServable(at: self.clock.date) == false)
      // The issuance right after the expiry fails too; the next retry succeeds.
      self.authority.isFailing = false
      await self.clock.sleeper(until: .seconds(14))
      self.clock.advance(by: .seconds(4))
      await cache.waitUntil { $0.svid != nil }
    }
  }

  @Test(arguments: [(60.0, false), (200.0, true)])
  func aWallClockThatJumpsIsNoticedAtTheNextCheck(jump: Double, expired: Bool) async throws {
    // The monotonic clock does not see a suspend or a clock step; the wall clock does.
    let skew = Mutex(0.0)
    let clock = self.clock
    let table = IdentityTable(
      pinned: Fixtures.identity, template: Self.settings(ttl: .seconds(100)), idleTimeout: .seconds(600),
      now: clock.date)
    let supervisor = IdentitySupervisor(
      table: table, authority: self.authority, counters: self.counters, clock: clock,
      now: { clock.date.addingTimeInterval(skew.withLock { $0 }) }, random: { 1 }, wallClockCheck: .seconds(30),
      logger: Logger(label: "test"))
    try await supervisor.performDueWork(for: Fixtures.identity)
    let first = try #require(table.pinnedCache.current.svid)
    try await self.running(supervisor) {
      // The check at 30 s comes before the renewal at 50 s.
      await clock.sleeper(until: .seconds(30))
      skew.withLock { $0 = jump }
      clock.advance(by: .seconds(30))
      await table.pinnedCache.waitUntil { ($0.svid?.leaf.serialNumber).map { $0 != first.leaf.serialNumber } ?? false }
      let renewed = try #require(table.pinnedCache.current.svid)
      #expect(renewed.isValid(at: clock.date.addingTimeInterval(jump)))
      // Past its notAfter the old certificate was withdrawn first; before it, only renewed.
      #expect(self.counters[.svidsWithdrawn] == (expired ? 1 : 0))
    }
  }

  @Test func dropsAWorkloadIdentityAfterItsIdleTimeoutOnTheTimer() async throws {
    let supervisor = self.makeSupervisor(ttl: .seconds(3600), idleTimeout: .seconds(600))
    let table = supervisor.table
    try await supervisor.performDueWork(for: Fixtures.identity)
    try await self.running(supervisor) {
      _ = table.openStream(Self.workload, credential: .agent, now: self.clock.date)
      #expect(await table.issue(Self.workload, retries: true, joinInFlight: false) != nil)
      table.closeStream(Self.workload, now: self.clock.date)
      // Eviction at 600 s comes before either renewal (1800 s).
      await self.clock.sleeper(until: .seconds(600))
      #expect(table.identities == [Fixtures.identity, Self.workload])
      self.clock.advance(by: .seconds(600))
      await self.clock.sleeper(until: .seconds(1800))
      #expect(table.identities == [Fixtures.identity])
      #expect(table.cache(for: Self.workload) == nil)
    }
  }

  @Test func reloadWithANewLifetimeReissuesEveryIdentity() async throws {
    let supervisor = self.makeSupervisor(ttl: .seconds(3600))
    let table = supervisor.table
    try await supervisor.performDueWork(for: Fixtures.identity)
    try await self.running(supervisor) {
      _ = table.openStream(Self.workload, credential: .agent, now: self.clock.date)
      #expect(await table.issue(Self.workload, retries: true, joinInFlight: false) != nil)
      await table.reconfigure(Self.settings(ttl: .seconds(600)), idleTimeout: .seconds(600), logger: Logger(label: "t"))
      for identity in [Fixtures.identity, Self.workload] {
        let svid = try #require(table.cache(for: identity)?.current.svid)
        #expect(svid.notAfter.timeIntervalSince(svid.issuedAt) <= 600)
      }
      #expect(self.counters[.certificatesIssued] == 4)
    }
  }

  @Test func aRefusedFirstIssuanceIsNotRetriedAndItsWaiterHearsWhy() async throws {
    let supervisor = self.makeSupervisor()
    let table = supervisor.table
    try await supervisor.performDueWork(for: Fixtures.identity)
    self.authority.isFailing = true
    try await self.running(supervisor) {
      _ = table.openStream(Self.workload, credential: .agent, now: self.clock.date)
      let outcome = await table.issue(Self.workload, retries: false, joinInFlight: false)
      guard case .failure(let error) = outcome else {
        Issue.record("expected a failure, got \(String(describing: outcome))")
        return
      }
      #expect(error.code == .signingFailed)
      #expect(table.lifecycle(of: Self.workload)?.retryAt == nil)
      #expect(table.readiness(of: Self.workload, tokenDigest: nil) == .needsIssuance)
    }
  }

  @Test func stoppingTheSupervisorAnswersEveryWaiter() async throws {
    let supervisor = self.makeSupervisor()
    let table = supervisor.table
    try await supervisor.performDueWork(for: Fixtures.identity)
    try await self.running(supervisor) {}
    let outcome = await table.issue(Fixtures.identity, retries: true, joinInFlight: false)
    guard case .failure(let error) = outcome else {
      Issue.record("expected a failure after the supervisor stopped, got \(String(describing: outcome))")
      return
    }
    #expect(error.code == .unavailable)
  }
}
