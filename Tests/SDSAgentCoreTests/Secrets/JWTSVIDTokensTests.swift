import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// `jwt-svid:<audience>` on SDS streams, driven event by event under a manual clock: the secret
/// is `Bearer <JWT>` of the stream's identity for the audience, renewed at half its life and
/// pushed on the open stream, dropped when no stream holds it.
@Suite(.timeLimit(.minutes(1))) struct JWTSVIDTokensTests {
  typealias Request = Envoy_Service_Discovery_V3_DiscoveryRequest
  typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

  let clock = ManualClock(startDate: Fixtures.now)
  let counters = AgentCounters()
  let streams = StreamRegistry()
  let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>
  let tokens: JWTSVIDTokens<ManualClock>
  static let ttl = Duration.seconds(60)

  init() throws {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(3600), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    try self.table.installTrustBundle(self.ca.trustBundle)
    self.identities = IdentitySupervisor(
      table: self.table, authority: self.ca, counters: self.counters, clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    let issuer = JWTSVIDIssuer(
      signer: JWTSVIDSigner(key: JWTSigningKey()), trustDomain: TrustDomainName(of: Fixtures.identity), ttl: Self.ttl)
    self.tokens = JWTSVIDTokens(issuer: issuer, clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  func service(
    jwtSVIDs: Bool = true, tokens: JWTSVIDTokens<ManualClock>? = nil, now: (@Sendable () -> Date)? = nil
  ) async throws -> SecretDiscoveryService {
    try await self.identities.performDueWork(for: Fixtures.identity)
    let admission = CallerAdmission(
      attestor: CallerAttestor(
        mode: .agent, rules: [], agentIdentity: Fixtures.identity, authenticator: nil, remoteCA: false,
        executable: { _ in nil }),
      limiter: CallerRateLimiter(limits: CallerLimits()), table: self.table, counters: self.counters,
      logger: Logger(label: "test"), now: { [clock] in clock.date })
    return SecretDiscoveryService(
      leases: admission, counters: self.counters, registry: self.streams, logger: Logger(label: "test"),
      jwtSVIDs: jwtSVIDs ? tokens ?? self.tokens : nil, now: now ?? { [clock] in clock.date })
  }

  func running(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.tokens.run() }
      try await body()
      group.cancelAll()
    }
  }

  func request(_ names: [String], acknowledging response: Response? = nil) -> Request {
    var request = Request()
    request.typeURL = SecretResource.typeURL
    request.resourceNames = names
    if let response {
      request.versionInfo = response.versionInfo
      request.responseNonce = response.nonce
    }
    return request
  }

  func sent(_ step: SecretDiscoveryService.Step<StreamedDiscoveryResponse>) throws -> Response? {
    if case .send(let response) = step { return try response.message() }
    return nil
  }

  /// The bearer token in a response's one `generic_secret`.
  func token(_ response: Response, name: String = "jwt-svid:backend") throws -> String {
    let resource = try #require(response.resources.first)
    let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: resource)
    #expect(secret.name == name)
    let value = secret.genericSecret.secret.inlineString
    #expect(value.hasPrefix("Bearer "))
    return String(value.dropFirst("Bearer ".count))
  }

  var cache: SecretCache { self.table.pinnedCache }
  let backend = JWTAudience("backend")!

  @Test func theSecretIsABearerJWTSVIDOfTheStreamsIdentityForTheAudience() async throws {
    let service = try await self.service()
    let stream = service.openStreamSecrets(try await service.lease(for: nil))
    #expect(try self.sent(try stream.handle(.request(self.request(["jwt-svid:backend"])))) == nil)
    await self.cache.waitUntil { $0.jwtSVIDs[self.backend] != nil }
    let response = try #require(try self.sent(try stream.handle(.secretsChanged)))
    let token = try self.token(response)
    let validated = try self.tokens.issuer.validator.validate(token, audience: "backend", now: self.clock.date)
    #expect(validated.spiffeID == Fixtures.identity)
    let claims = try #require(try JSONSerialization.jsonObject(with: validated.claimsJSON) as? [String: Any])
    #expect(claims["sub"] as? String == Fixtures.identity.description)
    #expect(claims["aud"] as? [String] == ["backend"])
    let iat = try #require(claims["iat"] as? Int)
    #expect(claims["exp"] as? Int == iat + 60 && iat == Int(Fixtures.now.timeIntervalSince1970))
    #expect(throws: JWTSVIDFailure.self) {
      try self.tokens.issuer.validator.validate(token, audience: "frontend", now: self.clock.date)
    }
    #expect(self.tokens.entries.count == 1)
  }

  @Test func aRenewalAtHalfItsLifeIsPushedOnTheOpenStream() async throws {
    let service = try await self.service()
    let stream = service.openStreamSecrets(try await service.lease(for: nil))
    try await self.running {
      _ = try stream.handle(.request(self.request(["default", "jwt-svid:backend"])))
      await self.cache.waitUntil { $0.jwtSVIDs[self.backend] != nil }
      let first = try #require(try self.sent(try stream.handle(.secretsChanged)))
      let firstToken = try self.token(Response.with { $0.resources = [first.resources[1]] })
      #expect(
        try self.sent(try stream.handle(.request(self.request(["default", "jwt-svid:backend"], acknowledging: first))))
          == nil)

      await self.clock.sleeper(until: .seconds(30))
      self.clock.advance(by: .seconds(29))
      #expect(self.cache.current.jwtSVIDs[self.backend]?.svid.token == firstToken, "not renewed before half its life")
      self.clock.advance(by: .seconds(1))
      await self.cache.waitUntil { $0.jwtSVIDs[self.backend]?.svid.token != firstToken }
      let renewed = try #require(try self.sent(try stream.handle(.secretsChanged)))
      #expect(renewed.versionInfo != first.versionInfo)
      let names = try renewed.resources.map {
        try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: $0).name
      }
      #expect(names == ["default", "jwt-svid:backend"])
      let secondToken = try self.token(Response.with { $0.resources = [renewed.resources[1]] })
      #expect(secondToken != firstToken)
      let second = try #require(self.cache.current.jwtSVIDs[self.backend]?.svid)
      #expect(second.issuedAt == Fixtures.now.addingTimeInterval(30))
      #expect(second.expiresAt == Fixtures.now.addingTimeInterval(90))
      // The next renewal is due at half the new token's life.
      await self.clock.sleeper(until: .seconds(60))
    }
  }

  @Test func aTokenNoStreamHoldsIsDroppedAndAnExpiredOneIsNeverServed() async throws {
    let service = try await self.service()
    let first = service.openStreamSecrets(try await service.lease(for: nil))
    let second = service.openDeltaSecrets(try await service.lease(for: nil))
    _ = try first.handle(.request(self.request(["jwt-svid:backend"])))
    // Signed while the first stream's request was handled: the second stream's answer has it.
    var delta = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
    delta.resourceNamesSubscribe = ["jwt-svid:backend"]
    guard case .send(let update) = try second.handle(.request(delta)) else {
      Issue.record("the delta stream was not answered at once")
      return
    }
    #expect(update.resources.map(\.name) == ["jwt-svid:backend"])
    #expect(self.tokens.entries.first?.value.holders == 2)

    let served = self.cache.current
    #expect(served.servable(at: self.clock.date.addingTimeInterval(59)).jwtSVIDs.count == 1)
    #expect(served.servable(at: self.clock.date.addingTimeInterval(60)).jwtSVIDs.isEmpty)

    first.close()
    #expect(self.tokens.entries.first?.value.holders == 1)
    second.close()
    #expect(self.tokens.entries.isEmpty)
    #expect(self.cache.current.jwtSVIDs.isEmpty)
  }

  @Test func anIdentityHoldsABoundedNumberOfAudiences() async throws {
    let service = try await self.service()
    let stream = service.openStreamSecrets(try await service.lease(for: nil))
    let names = (0...self.tokens.maximumAudiencesPerIdentity).map { "jwt-svid:aud-\($0)" }
    #expect {
      _ = try stream.handle(.request(self.request(names)))
    } throws: { error in
      guard let error = error as? RPCError else { return false }
      return error.code == .resourceExhausted && error.message.contains("at most 64")
    }
    #expect(self.tokens.entries.count == self.tokens.maximumAudiencesPerIdentity)
    stream.close()
    #expect(self.tokens.entries.isEmpty && self.cache.current.jwtSVIDs.isEmpty)
  }

  @Test func fetchSecretsAndAnAgentThatSignsNoJWTSVIDsRefuseTheName() async throws {
    let service = try await self.service()
    await #expect {
      _ = try await service.fetch(self.request(["jwt-svid:backend"]), lease: try await service.lease(for: nil))
    } throws: { error in
      (error as? SDSRequestError)?.message.contains("FetchJWTSVID") ?? false
    }
    let unsigned = try await self.service(jwtSVIDs: false)
    let stream = unsigned.openStreamSecrets(try await unsigned.lease(for: nil))
    #expect {
      _ = try stream.handle(.request(self.request(["jwt-svid:backend"])))
    } throws: { error in
      guard let error = error as? RPCError else { return false }
      return error.code == .notFound && error.message.contains("signs no JWT-SVIDs")
    }
    #expect(self.tokens.entries.isEmpty)
  }

  @Test func aTokenFoundExpiredByTheWallClockIsRenewedAtOnce() async throws {
    let clock = self.clock
    let step = Mutex<TimeInterval>(0)
    let wallClock: @Sendable () -> Date = { clock.date.addingTimeInterval(step.withLock { $0 }) }
    let tokens = JWTSVIDTokens(issuer: self.tokens.issuer, clock: clock, now: wallClock, logger: Logger(label: "test"))
    let service = try await self.service(tokens: tokens, now: wallClock)
    let stream = service.openStreamSecrets(try await service.lease(for: nil))
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await tokens.run() }
      _ = try stream.handle(.request(self.request(["jwt-svid:backend"])))
      let first = try #require(self.cache.current.jwtSVIDs[self.backend]?.svid.token)
      _ = try #require(try self.sent(try stream.handle(.secretsChanged)))
      await clock.sleeper(until: .seconds(30))
      // The wall clock jumps two minutes ahead (a suspend, a clock step); the monotonic one does not.
      step.withLock { $0 = 120 }
      #expect(try self.sent(try stream.handle(.secretsChanged)) == nil, "an expired token is not sent")
      await self.cache.waitUntil { $0.jwtSVIDs[self.backend]?.svid.token != first }
      let renewed = try #require(try self.sent(try stream.handle(.secretsChanged)))
      #expect(try self.token(renewed) != first)
      #expect(self.cache.current.jwtSVIDs[self.backend]?.svid.issuedAt == Fixtures.now.addingTimeInterval(120))
      #expect(clock.now.offset == .zero)
      group.cancelAll()
    }
  }
}
