import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// A fetch-mode agent's JWT-SVIDs under the manual clock: each comes from the CA once and is kept
/// until half its life, verified against the CA's JWT bundle first; the bundle is followed on a
/// timer and at once for a key not known yet; while the CA is down a kept token at less than half
/// its life is still answered and anything else is UNAVAILABLE.
@Suite(.timeLimit(.minutes(1))) struct FetchedJWTSVIDIssuerTests {
  /// A CA that signs with its key ring, counts what it is asked, and can be down.
  final class FakeCA: JWTSVIDAuthority {
    let ring: JWTKeyRing
    let now: @Sendable () -> Date
    let signings = Mutex(0)
    let bundleFetches = Mutex(0)
    let down = Mutex(false)
    /// A key outside the bundle that signs instead, to forge.
    let forger = Mutex<JWTSigningKey?>(nil)
    let credentials = Mutex<[CACredential]>([])

    init(ring: JWTKeyRing, now: @escaping @Sendable () -> Date) {
      self.ring = ring
      self.now = now
    }

    func signJWTSVID(
      for identity: SPIFFEID, audience: [String], credential: CACredential
    ) async throws(JWTSVIDFailure) -> String {
      guard !self.down.withLock({ $0 }) else { throw JWTSVIDFailure(.unavailable, "the CA is down") }
      self.signings.withLock { $0 += 1 }
      self.credentials.withLock { $0.append(credential) }
      let key = self.forger.withLock { $0 } ?? self.ring.current.signing
      return try JWTSVIDSigner(key: key).sign(identity, audience: audience, issuedAt: self.now(), ttl: self.ring.ttl)
        .token
    }

    func fetchJWTBundle() async throws(JWTSVIDFailure) -> JWTBundle {
      guard !self.down.withLock({ $0 }) else { throw JWTSVIDFailure(.unavailable, "the CA is down") }
      self.bundleFetches.withLock { $0 += 1 }
      return self.ring.bundle
    }
  }

  let clock = ManualClock(startDate: Fixtures.now)
  let table = IdentityTable(
    pinned: Fixtures.identity,
    template: IdentitySettings(
      keyType: .ecdsaP256, ttl: .seconds(3600), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
      backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
    idleTimeout: .seconds(600), now: Fixtures.now)
  let ca: FakeCA
  let issuer: FetchedJWTSVIDIssuer<ManualClock>
  static let domain = TrustDomainName(of: Fixtures.identity)

  init() {
    let clock = self.clock
    self.ca = FakeCA(
      ring: JWTKeyRing(JWTSigningKeys(signing: JWTSigningKey()), trustDomain: Self.domain, ttl: .seconds(300)),
      now: { clock.date })
    self.issuer = FetchedJWTSVIDIssuer(
      authority: self.ca, trustDomain: Self.domain, publishingTo: self.table.node, credential: { _ in .agent },
      refreshInterval: .seconds(60), clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  func svid(_ audience: [String] = ["backend"]) async throws(JWTSVIDFailure) -> JWTSVID {
    try await self.issuer.svid(for: Fixtures.identity, audience: audience, credential: nil, now: self.clock.date)
  }

  /// The kids of the own JWT bundle the node serves.
  var published: [String] { self.table.pinnedCache.current.jwtBundles.own?.keys.map(\.kid) ?? [] }

  @Test func aTokenIsAskedForOnceAndKeptUntilHalfItsLife() async throws {
    try await self.issuer.refreshBundle()
    let first = try await self.svid(["b", "a", "b"])
    #expect(first.audience == ["a", "b"] && first.kid == self.ca.ring.current.signing.kid)
    #expect(first.expiresAt == Fixtures.now.addingTimeInterval(300))
    self.clock.advance(by: .seconds(149))
    let atOnce = try #require(
      self.issuer.svidAtOnce(for: Fixtures.identity, audience: ["a", "b"], now: self.clock.date))
    #expect(try atOnce.get().token == first.token)
    #expect(try await self.svid(["a", "b"]).token == first.token)
    #expect(self.ca.signings.withLock { $0 } == 1)
    #expect(self.ca.credentials.withLock { $0 } == [.agent])
    self.clock.advance(by: .seconds(1))
    #expect(self.issuer.svidAtOnce(for: Fixtures.identity, audience: ["a", "b"], now: self.clock.date) == nil)
    let renewed = try await self.svid(["a", "b"])
    #expect(renewed.token != first.token && renewed.issuedAt == self.clock.date)
    #expect(self.ca.signings.withLock { $0 } == 2)
  }

  @Test func aTokenTheBundleDoesNotVerifyIsNeverServed() async throws {
    try await self.issuer.refreshBundle()
    self.ca.forger.withLock { $0 = JWTSigningKey() }
    let refused = await #expect(throws: JWTSVIDFailure.self) { _ = try await self.svid() }
    #expect(refused?.code == .unavailable)
    // The unknown key made it fetch the bundle once more before refusing.
    #expect(self.ca.bundleFetches.withLock { $0 } == 2)
    self.ca.forger.withLock { $0 = nil }
    _ = try await self.svid()
    #expect(self.ca.signings.withLock { $0 } == 2)
  }

  @Test func aKeyNotKnownYetIsFetchedAndPublishedBeforeTheTokenIsServed() async throws {
    try await self.issuer.refreshBundle()
    #expect(self.published == [self.ca.ring.current.signing.kid])
    self.ca.ring.rootPrepared(at: self.clock.date)
    self.ca.ring.rootSwitched(at: self.clock.date)
    let token = try await self.svid()
    #expect(token.kid == self.ca.ring.current.signing.kid)
    #expect(self.published == self.ca.ring.bundle.keys.map(\.kid) && self.published.count == 2)
    #expect(self.issuer.validator.bundles[Self.domain]?.keys.count == 2)
  }

  @Test func whileTheCAIsDownAKeptTokenIsServedUntilHalfItsLifeThenUnavailable() async throws {
    try await self.issuer.refreshBundle()
    let kept = try await self.svid()
    self.ca.down.withLock { $0 = true }
    self.clock.advance(by: .seconds(100))
    #expect(try await self.svid().token == kept.token)
    let other = await #expect(throws: JWTSVIDFailure.self) { _ = try await self.svid(["other"]) }
    #expect(other?.code == .unavailable && other?.rpcErrorCode == .unavailable)
    self.clock.advance(by: .seconds(50))
    let late = await #expect(throws: JWTSVIDFailure.self) { _ = try await self.svid() }
    #expect(late?.code == .unavailable)
  }

  @Test func anSDSTokenFromTheCAIsSignedOffTheHoldAndRenewedAtHalfItsLife() async throws {
    let tokens = JWTSVIDTokens(
      issuer: self.issuer, clock: self.clock, now: { [clock] in clock.date }, logger: Logger(label: "test"))
    let backend = try #require(JWTAudience("backend"))
    let cache = self.table.pinnedCache
    try await self.issuer.refreshBundle()
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await tokens.run() }
      tokens.hold([backend], by: 1, identity: Fixtures.identity, cache: cache)
      await cache.waitUntil { $0.jwtSVIDs[backend] != nil }
      let first = try #require(cache.current.jwtSVIDs[backend]?.svid)
      #expect(first.expiresAt == Fixtures.now.addingTimeInterval(300))
      // Due at half its life: asked for again, then served.
      await self.clock.sleeper(until: .seconds(150))
      self.clock.advance(by: .seconds(150))
      await cache.waitUntil { $0.jwtSVIDs[backend]?.svid.token != first.token }
      #expect(cache.current.jwtSVIDs[backend]?.svid.issuedAt == self.clock.date)
      #expect(self.ca.signings.withLock { $0 } == 2)
      tokens.release(1)
      group.cancelAll()
    }
  }

  @Test func theBundleIsFollowedOnItsTimerAndRetriedSoonerAfterAFailure() async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.issuer.run() }
      // At start.
      await self.clock.sleeper(until: .seconds(60))
      #expect(self.ca.bundleFetches.withLock { $0 } == 1)
      #expect(self.published.count == 1)
      self.ca.ring.rootPrepared(at: self.clock.date)
      self.ca.down.withLock { $0 = true }
      self.clock.advance(by: .seconds(60))
      // Failed: tried again 5 s later.
      await self.clock.sleeper(until: .seconds(65))
      #expect(self.published.count == 1)
      self.ca.down.withLock { $0 = false }
      self.clock.advance(by: .seconds(5))
      await self.clock.sleeper(until: .seconds(125))
      #expect(self.published.count == 2)
      #expect(self.issuer.nextRefresh == Fixtures.now.addingTimeInterval(125))
      group.cancelAll()
    }
  }
}
