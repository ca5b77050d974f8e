import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

/// The JWT signing keys through a whole root rotation under the manual clock: the prepared key is
/// published before it signs, signs from the switch, and the old key stays published until the
/// last token it signed has expired; tokens of the old key validate during the overlap only.
@Suite(.timeLimit(.minutes(1))) struct JWTKeyRotationTests {
  /// Makes keys in memory and records what it is asked to keep.
  final class MemoryStore: JWTSigningKeyStore {
    let events = Mutex([String]())

    func makeNext() throws -> JWTSigningKey {
      self.events.withLock { $0.append("next") }
      return JWTSigningKey()
    }

    func switched(_ keys: JWTSigningKeys) throws {
      self.events.withLock { $0.append("switched \(keys.retiring.count)") }
    }

    func retired(_ keys: JWTSigningKeys) throws {
      self.events.withLock { $0.append("retired \(keys.retiring.count)") }
    }
  }

  let clock = ManualClock(startDate: Fixtures.now)
  let store = MemoryStore()
  let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>
  let keys: JWTKeyRing
  let issuer: JWTSVIDIssuer
  let roots: RootRotationSupervisor<ManualClock>
  let old = JWTSigningKey()
  /// The JWT-SVIDs' lifetime; longer than a certificate's, so the old key outlives the old root.
  let ttl = Duration.seconds(300)

  init() throws {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    try self.table.installTrustBundle(self.ca.trustBundle)
    self.identities = IdentitySupervisor(
      table: self.table, authority: self.ca, counters: AgentCounters(), clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    self.keys = JWTKeyRing(
      JWTSigningKeys(signing: self.old), trustDomain: TrustDomainName(of: Fixtures.identity), ttl: self.ttl,
      store: self.store, publishingTo: self.table.node)
    self.issuer = JWTSVIDIssuer(keys: self.keys)
    self.roots = RootRotationSupervisor(
      ca: self.ca, host: SDSRootRotationHost(table: self.table, streams: StreamRegistry()), store: Memory(),
      resuming: nil, overlap: .seconds(10),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "next") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"), follower: self.keys)
  }

  /// A root rotation store that keeps nothing.
  struct Memory: RootRotationStore {
    func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {}
    func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError) {}
    func retired() throws(RootRotationError) {}
  }

  var cache: SecretCache { self.table.pinnedCache }
  var published: [String] { self.cache.current.jwtBundles.own?.keys.map(\.kid) ?? [] }

  func token(at date: Date? = nil) throws -> JWTSVID {
    try self.issuer.svid(for: Fixtures.identity, audience: ["backend"], now: date ?? self.clock.date)
  }

  func validate(_ token: JWTSVID) throws -> SPIFFEID {
    try self.cache.current.jwtBundles.validator.validate(token.token, audience: "backend", now: self.clock.date)
      .spiffeID
  }

  @Test func theKeyRotatesWithTheRootAndTheOldOneRetiresAfterItsLastToken() async throws {
    try await self.identities.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.identities.run() }
      group.addTask { await self.roots.run() }
      #expect(self.published == [self.old.kid])
      let before = try self.token()
      #expect(before.kid == self.old.kid)

      // Prepared: both keys published at once; the old one still signs.
      let revision = self.cache.current.jwtBundlesRevision
      _ = try self.roots.start()
      let next = try #require(self.keys.current.next)
      #expect(self.published == [self.old.kid, next.kid])
      #expect(self.cache.current.jwtBundlesRevision > revision, "the prepared key was not pushed")
      #expect(try self.token().kid == self.old.kid)
      #expect(self.store.events.withLock { $0 } == ["next"])

      // Switched: the new key signs, at once (the kept token is not handed out again); both published.
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.cache.waitUntil { $0.jwtBundles.own?.keys.first?.kid == next.kid }
      #expect(self.published == [next.kid, self.old.kid])
      let after = try self.token()
      #expect(after.kid == next.kid)
      #expect(try self.validate(before) == Fixtures.identity, "a token of the old key is refused during the overlap")
      #expect(try self.validate(after) == Fixtures.identity)
      let retireAt = try #require(self.keys.current.nextRetirement)
      #expect(retireAt == Fixtures.now.addingTimeInterval(10 + 300))
      #expect(retireAt >= before.expiresAt)

      // The old root retires first (one certificate lifetime after the switch); the old key stays.
      await self.clock.sleeper(until: .seconds(110))
      self.clock.advance(by: .seconds(100))
      await self.roots.waitUntil { $0 == nil }
      #expect(self.published == [next.kid, self.old.kid])

      // Retired once its last token has expired: only the new key.
      await self.clock.sleeper(until: .seconds(310))
      self.clock.advance(by: .seconds(200))
      await self.cache.waitUntil { $0.jwtBundles.own?.keys.count == 1 }
      #expect(self.published == [next.kid])
      #expect(self.store.events.withLock { $0 } == ["next", "switched 1", "retired 0"])
      #expect(self.keys.current.nextRetirement == nil)
      #expect {
        try self.validate(before)
      } throws: { error in
        (error as? JWTSVIDFailure)?.code == .unknownKey
      }
      #expect(try self.validate(try self.token()) == Fixtures.identity)
      group.cancelAll()
    }
  }

  @Test func aSecondSwitchBeforeTheFirstOldKeyRetiredKeepsBothPublished() throws {
    var keys = JWTSigningKeys(signing: self.old)
    let second = JWTSigningKey()
    let third = JWTSigningKey()
    keys.prepare(second)
    let first = keys.switchToNext(at: Fixtures.now, ttl: self.ttl)
    let again = keys.switchToNext(at: Fixtures.now, ttl: self.ttl)
    #expect(first && !again, "switched without a prepared key")
    keys.prepare(third)
    let later = keys.switchToNext(at: Fixtures.now.addingTimeInterval(60), ttl: self.ttl)
    #expect(later)
    #expect(keys.published.map(\.kid) == [third.kid, self.old.kid, second.kid])
    let retired = keys.retire(now: Fixtures.now.addingTimeInterval(300))
    #expect(retired.map(\.key.kid) == [self.old.kid])
    #expect(keys.published.map(\.kid) == [third.kid, second.kid])
    #expect(keys.retiring.first?.replacedBy == third.kid)
  }

  @Test func aRetirementResumedAfterTheRotationEndedIsTakenOnTheSupervisorsTimer() async throws {
    let clock = self.clock
    var keys = JWTSigningKeys(signing: self.old)
    let next = JWTSigningKey()
    keys.prepare(next)
    keys.switchToNext(at: Fixtures.now, ttl: .seconds(30))
    let ring = JWTKeyRing(
      keys, trustDomain: TrustDomainName(of: Fixtures.identity), ttl: .seconds(30), publishingTo: self.table.node)
    let roots = RootRotationSupervisor(
      ca: self.ca, host: SDSRootRotationHost(table: self.table, streams: StreamRegistry()), store: Memory(),
      resuming: nil, overlap: .seconds(10),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "next") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"), follower: ring)
    #expect(self.published == [next.kid, self.old.kid])
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await roots.run() }
      await clock.sleeper(until: .seconds(30))
      #expect(self.published == [next.kid, self.old.kid])
      clock.advance(by: .seconds(30))
      await self.cache.waitUntil { $0.jwtBundles.own?.keys.count == 1 }
      #expect(self.published == [next.kid])
      #expect(roots.current == nil)
      group.cancelAll()
    }
  }
}
