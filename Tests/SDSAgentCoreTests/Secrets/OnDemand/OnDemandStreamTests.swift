import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// On-demand names and trust bundles on a `DeltaSecrets` stream of the SDS service, driven event
/// by event under a manual clock: who may ask, re-admission once the rate allows, and which ACK
/// acknowledges a new root.
@Suite(.timeLimit(.minutes(1))) struct OnDemandStreamTests {
  typealias Request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
  typealias Response = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse

  let clock = ManualClock(startDate: Fixtures.now)
  let counters = AgentCounters()
  let streams = StreamRegistry()
  let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>

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
      table: self.table, authority: self.ca, counters: self.counters, clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
  }

  func store(rate: Rate = Rate(count: 60, period: .seconds(60)), callers: Set<SPIFFEID>? = nil)
    throws -> OnDemandCertificates<ManualClock>
  {
    let clock = self.clock
    return OnDemandCertificates(
      settings: OnDemandSettings(
        patterns: [try DNSNamePattern(parsing: "*.internal.example")], ttl: .seconds(1000), maximumNames: 10,
        rate: rate, idleTimeout: .seconds(30), callers: callers),
      ca: self.ca, table: self.table, counters: self.counters, clock: clock, now: { clock.date },
      logger: Logger(label: "test"))
  }

  /// A `DeltaSecrets` stream of the agent's own identity (every caller gets it).
  func openStream(onDemand: OnDemandCertificates<ManualClock>?) async throws -> SecretStream<Request, Response> {
    try await self.identities.performDueWork(for: Fixtures.identity)
    let admission = CallerAdmission(
      attestor: CallerAttestor(
        mode: .agent, rules: [], agentIdentity: Fixtures.identity, authenticator: nil, remoteCA: false,
        executable: { _ in nil }),
      limiter: CallerRateLimiter(limits: CallerLimits()), table: self.table, counters: self.counters,
      logger: Logger(label: "test"), now: { [clock] in clock.date })
    let service = SecretDiscoveryService(
      leases: admission, counters: self.counters, registry: self.streams, logger: Logger(label: "test"),
      onDemand: onDemand, now: { [clock] in clock.date })
    return service.openDeltaSecrets(try await service.lease(for: nil))
  }

  func running(_ store: OnDemandCertificates<ManualClock>, _ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await store.run() }
      try await body()
      group.cancelAll()
    }
  }

  func request(subscribe: [String] = [], nonce: String = "") -> Request {
    var request = Request()
    request.typeURL = SecretResource.typeURL
    request.resourceNamesSubscribe = subscribe
    request.responseNonce = nonce
    return request
  }

  func sent(_ step: SecretDiscoveryService.Step<Response>) -> Response? {
    if case .send(let response) = step { return response }
    return nil
  }

  var cache: SecretCache { self.table.pinnedCache }

  // MARK: - Who may ask (issue #21, class 2)

  @Test func aCallerTheRuleDoesNotNameIsRefusedPermissionDeniedAndNothingIsMinted() async throws {
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/edge/sa/gateway")
    let store = try self.store(callers: [other])
    let stream = try await self.openStream(onDemand: store)
    #expect {
      _ = try stream.handle(.request(self.request(subscribe: ["a.internal.example"])))
    } throws: { error in
      // The stream throws its status; the refusal it was made from is its cause.
      guard let error = error as? RPCError, error.cause is SDSRequestError else { return false }
      return error.code == .permissionDenied && error.message.contains("on-demand-callers")
        && error.message.contains(Fixtures.identity.description)
    }
    #expect(store.entries.isEmpty)
    #expect(self.counters[.onDemandIssued] == 0)
  }

  @Test func aCallerTheRuleNamesGetsItsName() async throws {
    let store = try self.store(callers: [Fixtures.identity])
    let stream = try await self.openStream(onDemand: store)
    try await self.running(store) {
      _ = try stream.handle(.request(self.request(subscribe: ["a.internal.example"])))
      let name = try DNSName(parsing: "a.internal.example")
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      let response = try #require(self.sent(try stream.handle(.secretsChanged)))
      #expect(response.resources.map(\.name) == ["a.internal.example"])
    }
  }

  // MARK: - A refusal is not forever (issue #21, class 4)

  @Test func aNameRefusedOverTheRateIsSentOnTheSameStreamOnceTheRateAllows() async throws {
    let store = try self.store(rate: Rate(count: 1, period: .seconds(60)))
    let stream = try await self.openStream(onDemand: store)
    try await self.running(store) {
      let a = try DNSName(parsing: "a.internal.example")
      _ = try stream.handle(.request(self.request(subscribe: ["a.internal.example"])))
      await self.cache.waitUntil { $0.onDemand[a] != nil }
      let first = try #require(self.sent(try stream.handle(.secretsChanged)))
      #expect(first.resources.map(\.name) == ["a.internal.example"])
      let refused = try #require(
        self.sent(try stream.handle(.request(self.request(subscribe: ["b.internal.example"], nonce: first.nonce)))))
      #expect(refused.removedResources == ["b.internal.example"])
      // One name a minute: the next token comes at +60 s.
      let b = try DNSName(parsing: "b.internal.example")
      self.clock.advance(by: .seconds(60))
      await self.cache.waitUntil { $0.onDemand[b] != nil }
      let readmitted = try #require(self.sent(try stream.handle(.secretsChanged)))
      #expect(readmitted.resources.map(\.name) == ["b.internal.example"])
      #expect(store.entries[b]?.holders == 1)
    }
  }

  // MARK: - Which ACK acknowledges a new root (issue #21, class 5)

  @Test func anACKOfAResponseSentBeforeTheNewRootDoesNotAcknowledgeIt() async throws {
    let stream = try await self.openStream(onDemand: nil)
    let first = try #require(self.sent(try stream.handle(.request(self.request(subscribe: ["default", "ROOTCA"])))))
    let id = try #require(self.streams.streams.first?.id)
    // A new root joins the bundle and is pushed before the client answered the first response.
    let next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "next")
    try self.table.installTrustBundle(TrustBundle(roots: [Fixtures.material.certificate, next.certificate]))
    let pushed = try #require(self.sent(try stream.handle(.secretsChanged)))
    #expect(pushed.resources.map(\.name) == ["ROOTCA"])
    _ = try stream.handle(.request(self.request(nonce: first.nonce)))
    #expect(
      self.streams.streamsNotAcknowledging(next.certificate).map(\.id) == [id],
      "the ACK of a response without the new root acknowledged it")
    _ = try stream.handle(.request(self.request(nonce: pushed.nonce)))
    #expect(self.streams.streamsNotAcknowledging(next.certificate).isEmpty)
  }
}
