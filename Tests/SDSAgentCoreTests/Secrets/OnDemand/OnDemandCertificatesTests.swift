import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// On-demand certificates under a manual clock: what is admitted, minted, renewed and dropped.
@Suite(.timeLimit(.minutes(1))) struct OnDemandCertificatesTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let counters = AgentCounters()
  let table: IdentityTable
  let store: OnDemandCertificates<ManualClock>

  init() throws {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    self.store = OnDemandCertificates(
      settings: OnDemandSettings(
        patterns: [try DNSNamePattern(parsing: "*.internal.example")], ttl: .seconds(100), maximumNames: 2,
        rate: Rate(count: 3, period: .seconds(60)), idleTimeout: .seconds(30)),
      ca: EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material)), table: self.table, counters: self.counters,
      clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  func running(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.store.run() }
      try await body()
      group.cancelAll()
    }
  }

  var cache: SecretCache { self.table.pinnedCache }

  func refusal(_ name: String) -> OnDemandRefusal? {
    if case .failure(let refusal) = self.store.admit(name) { return refusal }
    return nil
  }

  @Test func anAllowedNameIsMintedWithItsDNSNameAndServedToEveryIdentity() async throws {
    try await self.running {
      let name = try DNSName(parsing: "a.internal.example")
      #expect(try self.store.admit("A.internal.example").get() == name)
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      let certificate = try #require(self.cache.current.onDemand[name]?.certificate)
      #expect(try certificate.leaf.extensions.subjectAlternativeNames?.contains(.dnsName("a.internal.example")) == true)
      #expect(
        Fixtures.material.certificate.publicKey.isValidSignature(certificate.leaf.signature, for: certificate.leaf))
      #expect(self.counters[.onDemandIssued] == 1)
    }
  }

  @Test func namesOutsideThePatternsOrNotHostNamesAreRefusedAndCounted() {
    #expect(self.refusal("a.b.internal.example") == .notAllowed)
    #expect(self.refusal("evil.example") == .notAllowed)
    #expect(self.refusal("10.0.0.1") == .invalidName)
    #expect(self.refusal("a b.internal.example") == .invalidName)
    let notAllowed = self.counters.series.first {
      $0.series.name == .onDemandRefused && $0.series.labels.map(\.value) == ["not_allowed"]
    }
    #expect(notAllowed?.value == 2)
    #expect(self.counters[.onDemandRefused] == 4)
    #expect(self.store.entries.isEmpty)
  }

  @Test func theCapCountsHeldNamesAndAnIdleNameMakesRoom() throws {
    #expect(self.refusal("a.internal.example") == nil)
    #expect(self.refusal("b.internal.example") == nil)
    #expect(self.refusal("c.internal.example") == .overCap)
    self.store.release(try DNSName(parsing: "a.internal.example"))
    #expect(self.refusal("c.internal.example") == nil)
    #expect(Set(self.store.entries.keys.map(\.name)) == ["b.internal.example", "c.internal.example"])
  }

  @Test func theRateBoundsNewNamesNotNamesAlreadyHeld() throws {
    #expect(self.refusal("a.internal.example") == nil)
    self.store.release(try DNSName(parsing: "a.internal.example"))
    #expect(self.refusal("b.internal.example") == nil)
    self.store.release(try DNSName(parsing: "b.internal.example"))
    #expect(self.refusal("c.internal.example") == nil)
    self.store.release(try DNSName(parsing: "c.internal.example"))
    #expect(self.refusal("d.internal.example") == .overRate)
    #expect(self.refusal("c.internal.example") == nil, "a name already held costs no rate")
  }

  @Test func aHeldNameIsRenewedAtHalfItsLifetimeAndAnIdleOneDropped() async throws {
    try await self.running {
      let name = try self.store.admit("a.internal.example").get()
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      let first = try #require(self.cache.current.onDemand[name]?.certificate.serial)
      await self.clock.sleeper(until: .seconds(50))
      self.clock.advance(by: .seconds(50))
      await self.cache.waitUntil { $0.onDemand[name].map { $0.certificate.serial != first } ?? false }
      self.store.release(name)
      await self.clock.sleeper(until: .seconds(80))
      self.clock.advance(by: .seconds(30))
      await self.cache.waitUntil { $0.onDemand[name] == nil }
      #expect(self.store.entries.isEmpty)
    }
  }

  @Test func aShorterIdleTimeoutFromAReloadDropsAnIdleNameAtTheNewTimeout() async throws {
    try await self.running {
      let name = try self.store.admit("a.internal.example").get()
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      self.store.release(name)
      await self.clock.sleeper(until: .seconds(30))
      self.store.reconfigure(idleTimeout: .seconds(10))
      #expect(self.store.idleTimeout == .seconds(10))
      await self.clock.sleeper(until: .seconds(10))
      #expect(self.store.entries[name] != nil, "dropped before the new timeout")
      self.clock.advance(by: .seconds(10))
      await self.cache.waitUntil { $0.onDemand[name] == nil }
      #expect(self.store.entries.isEmpty)
    }
  }

  // MARK: - A refusal is not forever (issue #21, class 4)

  @Test func aNameRefusedOverTheCapIsMintedOnceThereIsRoomAndTakenByTheStreamThatWaited() async throws {
    try await self.running {
      let (a, c) = (try DNSName(parsing: "a.internal.example"), try DNSName(parsing: "c.internal.example"))
      #expect(self.refusal("a.internal.example") == nil)
      #expect(self.refusal("b.internal.example") == nil)
      #expect(self.refusal("c.internal.example") == .overCap)
      #expect(!self.store.admitWaiting(c), "taken before it was minted")
      self.store.release(a)
      await self.cache.waitUntil { $0.onDemand[c] != nil }
      #expect(self.store.entries[a] == nil, "the idle name made room")
      #expect(self.store.entries[c]?.reserved == 1 && self.store.entries[c]?.idleSince == nil)
      #expect(self.store.admitWaiting(c))
      #expect(self.store.entries[c]?.holders == 1 && self.store.entries[c]?.reserved == 0)
      #expect(self.counters[.onDemandRefused] == 1, "minting a name waited for is not another refusal")
    }
  }

  @Test func aNameNoStreamWaitsForAnyMoreIsNotMinted() async throws {
    try await self.running {
      let (a, c) = (try DNSName(parsing: "a.internal.example"), try DNSName(parsing: "c.internal.example"))
      #expect(self.refusal("a.internal.example") == nil)
      #expect(self.refusal("b.internal.example") == nil)
      #expect(self.refusal("c.internal.example") == .overCap)
      self.store.withdraw(c)
      self.store.release(a)
      // The timer now sleeps until the idle name's expiry, with nothing else to do.
      await self.clock.sleeper(until: .seconds(30))
      #expect(self.store.entries[c] == nil)
      #expect(self.store.entries[a]?.idleSince != nil)
    }
  }

  @Test func namesWaitedForAreBounded() {
    #expect(self.refusal("a.internal.example") == nil)
    #expect(self.refusal("b.internal.example") == nil)
    for index in 0..<OnDemandCertificates<ManualClock>.maximumWaiting {
      #expect(self.refusal("w\(index).internal.example") == .overCap)
    }
    #expect(self.refusal("one-more.internal.example") == .overWaiting)
    #expect(self.refusal("w0.internal.example") == .overCap, "a name already waited for still waits")
  }
}
