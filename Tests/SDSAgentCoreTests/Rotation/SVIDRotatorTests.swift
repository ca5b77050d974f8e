import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@Suite struct SVIDRotatorTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let cache = SecretCache()
  let counters = AgentCounters()
  let authority = TestAuthority(material: Fixtures.material)

  func makeRotator(ttl: Duration = .seconds(100)) -> SVIDRotator<ManualClock> {
    let clock = self.clock
    return SVIDRotator(
      configuration: .init(
        identity: Fixtures.identity,
        keyType: .ecdsaP256,
        ttl: ttl,
        schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))
      ),
      authority: self.authority,
      cache: self.cache,
      counters: self.counters,
      clock: clock,
      now: { clock.date },
      random: { 1 },
      logger: Logger(label: "test")
    )
  }

  @Test func rotatesAtHalfTheLifetimeAndPushesTheNewSVID() async throws {
    let rotator = self.makeRotator()
    let first = try await rotator.rotate().certifiedKey
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { try await rotator.run() }
      await self.clock.sleepers(atLeast: 1)
      #expect(self.clock.nextDeadline == .seconds(50))
      self.clock.advance(by: .seconds(49))
      #expect(self.cache.current.svid?.leaf.serialNumber == first.leaf.serialNumber)
      self.clock.advance(by: .seconds(1))
      await self.cache.waitUntil { $0.svid?.leaf.serialNumber != first.leaf.serialNumber }
      let second = try #require(self.cache.current.svid)
      #expect(second.notAfter > first.notAfter)
      #expect(self.counters[.certificatesIssued] == 2)
      group.cancelAll()
    }
  }

  @Test func keepsServingThroughAnOutageAndRenewsWhenTheCAReturns() async throws {
    let rotator = self.makeRotator()
    let first = try await rotator.rotate().certifiedKey
    self.authority.isFailing = true
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { try await rotator.run() }
      await self.clock.sleepers(atLeast: 1)
      self.clock.advance(by: .seconds(50))
      // The renewal fails: the rotator backs off while the current SVID stays served.
      await self.counters.waitUntil { $0[.issuanceFailures] >= 1 }
      await self.clock.sleepers(atLeast: 1)
      #expect(self.clock.nextDeadline == .seconds(54))
      #expect(self.cache.current.svid?.leaf.serialNumber == first.leaf.serialNumber)
      self.authority.isFailing = false
      self.clock.advance(by: .seconds(4))
      await self.cache.waitUntil { $0.svid?.leaf.serialNumber != first.leaf.serialNumber }
      #expect(self.counters[.svidsWithdrawn] == 0)
      group.cancelAll()
    }
  }

  @Test func withdrawsAnSVIDThatExpiresUnrenewedAndRecovers() async throws {
    let rotator = self.makeRotator(ttl: .seconds(10))
    _ = try await rotator.rotate()
    self.authority.isFailing = true
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { try await rotator.run() }
      // Renewal at 5 s fails; retries every 4 s (capped at the time left) until 10 s.
      var advanced = Duration.zero
      while self.cache.current.svid != nil {
        await self.clock.sleepers(atLeast: 1)
        let step = (self.clock.nextDeadline ?? advanced) - advanced
        self.clock.advance(by: step)
        advanced += step
        if advanced >= .seconds(10) { break }
      }
      await self.cache.waitUntil { $0.svid == nil }
      #expect(self.counters[.svidsWithdrawn] == 1)
      #expect(advanced >= .seconds(10))
      self.authority.isFailing = false
      await self.clock.sleepers(atLeast: 1)
      self.clock.advance(by: .seconds(4))
      await self.cache.waitUntil { $0.svid != nil }
      group.cancelAll()
    }
  }
}
