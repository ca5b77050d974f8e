import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The trust schedule's changes, made by the identity supervisor on its one timer under the manual
/// clock: several keys at once, each at its time and not before, a key's new schedule replacing
/// its old one, and a change that schedules its key again.
@Suite(.timeLimit(.minutes(1))) struct TrustScheduleTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let table: IdentityTable
  let supervisor: IdentitySupervisor<ManualClock>
  let made: AsyncStream<TrustSchedule.Key>
  let make: AsyncStream<TrustSchedule.Key>.Continuation

  init() {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(1000), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(6000), now: clock.date)
    self.supervisor = IdentitySupervisor(
      table: self.table, authority: TestAuthority(material: Fixtures.material), counters: AgentCounters(),
      clock: clock, now: { clock.date }, random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    (self.made, self.make) = AsyncStream.makeStream(of: TrustSchedule.Key.self)
  }

  func at(_ seconds: Int) -> Date { Fixtures.now.addingTimeInterval(TimeInterval(seconds)) }

  /// Schedules `key` at `seconds`; making it is reported on `made`.
  func schedule(_ key: TrustSchedule.Key, at seconds: Int) {
    self.table.trustSchedule.schedule(key, at: self.at(seconds)) { [make] _ in
      make.yield(key)
      return nil
    }
  }

  @Test func takeDueTakesOnlyWhatIsDueEarliestFirst() throws {
    let other = try TrustDomainName(parsing: "other.example")
    self.schedule(.caRootExpiry, at: 30)
    self.schedule(.fetchedRetention, at: 20)
    self.schedule(.federatedExpiry(other), at: 40)
    self.schedule(.federatedExpiry(other), at: 25)
    #expect(self.table.trustSchedule.nextDeadline == self.at(20))
    #expect(self.table.trustSchedule.takeDue(now: self.at(19)).isEmpty)
    let due = self.table.trustSchedule.takeDue(now: self.at(30))
    #expect(due.map(\.key) == [.fetchedRetention, .federatedExpiry(other), .caRootExpiry])
    #expect(self.table.trustSchedule.scheduled.isEmpty)
  }

  @Test func theSupervisorMakesEachKeyAtItsTime() async throws {
    let other = try TrustDomainName(parsing: "other.example")
    // Issued: the identity's own next deadline is its renewal, at 500 s.
    try await self.supervisor.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.supervisor.run() }
      var made = self.made.makeAsyncIterator()
      self.schedule(.caRootExpiry, at: 30)
      self.schedule(.fetchedRetention, at: 20)
      self.schedule(.federatedExpiry(other), at: 40)
      self.schedule(.federatedExpiry(other), at: 25)
      await self.clock.sleeper(until: .seconds(20))
      self.clock.advance(by: .seconds(19))
      #expect(self.table.trustSchedule.scheduled.count == 3, "made before its time")
      self.clock.advance(by: .seconds(1))
      #expect(await made.next() == .fetchedRetention)
      await self.clock.sleeper(until: .seconds(25))
      self.clock.advance(by: .seconds(5))
      #expect(await made.next() == .federatedExpiry(other))
      await self.clock.sleeper(until: .seconds(30))
      self.clock.advance(by: .seconds(5))
      #expect(await made.next() == .caRootExpiry)
      // The replaced deadline at 40 s is gone: the supervisor waits for the renewal.
      await self.clock.sleeper(until: .seconds(500))
      #expect(self.table.trustSchedule.scheduled.isEmpty)
      group.cancelAll()
    }
  }

  @Test func aChangeCanScheduleItsKeyAgain() async throws {
    try await self.supervisor.performDueWork(for: Fixtures.identity)
    let schedule = self.table.trustSchedule
    let (make, at) = (self.make, self.at(20))
    schedule.schedule(.fetchedRetention, at: self.at(10)) { _ in
      schedule.schedule(.fetchedRetention, at: at) { _ in
        make.yield(.fetchedRetention)
        return "second"
      }
      return "first"
    }
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.supervisor.run() }
      var made = self.made.makeAsyncIterator()
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.clock.sleeper(until: .seconds(20))
      #expect(schedule.deadline(of: .fetchedRetention) == at)
      self.clock.advance(by: .seconds(10))
      #expect(await made.next() == .fetchedRetention)
      group.cancelAll()
    }
  }
}
