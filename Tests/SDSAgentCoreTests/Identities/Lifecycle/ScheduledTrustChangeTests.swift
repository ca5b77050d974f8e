import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// A change of the trust bundle scheduled in the identity table (the operator's previous root
/// leaving it) is made by the identity supervisor on its one timer, under the manual clock: at
/// its time and not before, the latest schedule replacing an earlier one, nothing once cancelled.
@Suite(.timeLimit(.minutes(1))) struct ScheduledTrustChangeTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let table: IdentityTable
  let supervisor: IdentitySupervisor<ManualClock>

  init() {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    self.supervisor = IdentitySupervisor(
      table: self.table, authority: TestAuthority(material: Fixtures.material), counters: AgentCounters(),
      clock: clock, now: { clock.date }, random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
  }

  static func root(_ name: String) throws -> CAMaterial {
    try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: name)
  }

  var served: Set<Certificate> { Set(self.table.pinnedCache.current.trust?.own.roots ?? []) }

  @Test func theSupervisorMakesTheLatestScheduledChangeAtItsTimeAndNothingOnceCancelled() async throws {
    let (first, later, sooner) = (try Self.root("first"), try Self.root("later"), try Self.root("sooner"))
    try self.table.installTrustBundle(first.trustBundle)
    // Issued: the identity's own next deadline is its renewal, at 50 s.
    try await self.supervisor.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.supervisor.run() }
      self.table.scheduleTrustChange(at: self.clock.date.addingTimeInterval(30), note: "later") {
        later.trustBundle
      }
      self.table.scheduleTrustChange(at: self.clock.date.addingTimeInterval(20), note: "sooner") {
        sooner.trustBundle
      }
      #expect(self.table.scheduledTrustChange == self.clock.date.addingTimeInterval(20))
      await self.clock.sleeper(until: .seconds(20))
      self.clock.advance(by: .seconds(19))
      #expect(self.served == [first.certificate], "changed before its time")
      self.clock.advance(by: .seconds(1))
      await self.table.pinnedCache.waitUntil { Set($0.trust?.own.roots ?? []) == [sooner.certificate] }
      #expect(self.table.scheduledTrustChange == nil)

      self.table.scheduleTrustChange(at: self.clock.date.addingTimeInterval(10), note: "cancelled") {
        later.trustBundle
      }
      await self.clock.sleeper(until: .seconds(30))
      self.table.cancelTrustChange()
      self.clock.advance(by: .seconds(10))
      // The supervisor woke at 30 s, found nothing due, and waits for the renewal.
      await self.clock.sleeper(until: .seconds(50))
      #expect(self.served == [sooner.certificate], "a cancelled change was made")
      group.cancelAll()
    }
  }
}
