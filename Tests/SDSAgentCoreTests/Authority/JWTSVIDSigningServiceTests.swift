import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import SDSAgentCore
import Testing

/// `ca serve`'s `JWTSVIDService` over the in-process transport: a caller gets JWT-SVIDs only of
/// identities it may get certificates for, audiences are bounded, admission applies, the bundle
/// verifies what it signs, and a server without keys answers UNIMPLEMENTED.
@Suite struct JWTSVIDSigningServiceTests {
  typealias Client = Sdsagent_Ca_V1_JWTSVIDService.Client<InProcessTransport.Client>

  static let node = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/node/sa/agent")
  static let workload = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/cart")
  let ring = JWTKeyRing(
    JWTSigningKeys(signing: JWTSigningKey()), trustDomain: TrustDomainName(of: Fixtures.identity), ttl: .seconds(300))

  /// `good` is `Fixtures.identity`, `node` a trusted node identity.
  struct Tokens: CallerAuthenticator {
    func authenticate(bearerToken: String) async -> CallerAuthentication {
      switch bearerToken {
      case "good": .authenticated(Fixtures.identity)
      case "node": .authenticated(JWTSVIDSigningServiceTests.node)
      default: .refused("unknown token")
      }
    }
  }

  func withService<R: Sendable>(
    keys: JWTSVIDSigningService.Keys? = nil, admission: (any SigningAdmission)? = nil,
    _ body: (Client) async throws -> R
  ) async throws -> R {
    let service = JWTSVIDSigningService(
      keys: keys ?? .ring(self.ring), authenticator: Tokens(), trustedNodeIdentities: [Self.node],
      admission: admission, logger: Logger(label: "test"), now: { Fixtures.now })
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: [service]) { _ in
      try await withGRPCClient(transport: transport.client) { client in try await body(Client(wrapping: client)) }
    }
  }

  func sign(_ id: String = "", audience: [String] = ["backend"], token: String? = "good") async throws -> Result<
    String, RPCError
  > {
    var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
    request.spiffeID = id
    request.audience = audience
    let metadata: Metadata = token.map { ["authorization": "Bearer \($0)"] } ?? [:]
    return try await self.withService { client in
      do {
        return .success(try await client.signJWTSVID(request, metadata: metadata).token)
      } catch let error as RPCError {
        return .failure(error)
      }
    }
  }

  func bundle() async throws -> JWTBundle {
    let response = try await self.withService { client in
      try await client.fetchJWTBundle(Sdsagent_Ca_V1_FetchJWTBundleRequest())
    }
    #expect(response.trustDomain == "cluster.local")
    struct Document: Decodable { let keys: [JWK] }
    let keys = try JSONDecoder().decode(Document.self, from: response.jwks).keys.map { try JWTPublicKey(jwk: $0) }
    return JWTBundle(trustDomain: TrustDomainName(of: Fixtures.identity), keys: keys)
  }

  @Test func theCallerGetsItsOwnJWTSVIDWhichTheBundleVerifies() async throws {
    let token = try await self.sign(audience: ["backend", "other"]).get()
    let validator = JWTSVIDValidator(bundles: [try await self.bundle()])
    let validated = try validator.validate(token, audience: "other", now: Fixtures.now)
    #expect(validated.spiffeID == Fixtures.identity)
    let claims = try #require(try JSONSerialization.jsonObject(with: validated.claimsJSON) as? [String: Any])
    #expect(claims["exp"] as? Int == Int(Fixtures.now.timeIntervalSince1970) + 300)
    #expect(try await self.sign(Fixtures.identity.description).get().isEmpty == false)
  }

  @Test func anotherIdentityIsOnlyForATrustedNodeAndOnlyInTheTrustDomain() async throws {
    let denied = try await self.sign(Self.workload.description)
    #expect(denied.failure?.code == .permissionDenied)
    let workload = try await self.sign(Self.workload.description, token: "node").get()
    let validator = JWTSVIDValidator(bundles: [try await self.bundle()])
    #expect(try validator.validate(workload, audience: "backend", now: Fixtures.now).spiffeID == Self.workload)
    let foreign = try await self.sign("spiffe://elsewhere.test/ns/a/sa/b", token: "node")
    #expect(foreign.failure?.code == .permissionDenied)
    #expect(try await self.sign("not an id", token: "node").failure?.code == .invalidArgument)
  }

  @Test func anUnauthenticatedCallerGetsNothing() async throws {
    #expect(try await self.sign(token: nil).failure?.code == .unauthenticated)
    #expect(try await self.sign(token: "forged").failure?.code == .unauthenticated)
  }

  @Test(arguments: [
    [String](), Array(repeating: "a", count: 17).enumerated().map { "aud\($0.offset)" },
    [String(repeating: "x", count: 256)],
    ["with space"], [""],
  ])
  func audiencesAreBounded(_ audience: [String]) async throws {
    let refused = try await self.sign(audience: audience)
    #expect(refused.failure?.code == .invalidArgument)
    #expect((refused.failure?.message.count ?? .max) <= 600)
  }

  @Test func sixteenAudiencesOfTheLongestLengthAreSigned() async throws {
    let audience = (0..<16).map { "\($0)" + String(repeating: "x", count: 254 - "\($0)".count) + "!" }
    let token = try await self.sign(audience: audience).get()
    let validator = JWTSVIDValidator(bundles: [try await self.bundle()])
    #expect(try validator.validate(token, audience: audience[15], now: Fixtures.now).spiffeID == Fixtures.identity)
  }

  @Test func admissionAppliesToBothMethods() async throws {
    let busy = IstioCertificateSignerAdmissionTests.Gate(
      refusal: AdmissionRefusal(.inFlight, retryAfter: .milliseconds(250)))
    let refused = try await self.withService(admission: busy) { client in
      await #expect(throws: RPCError.self) { _ = try await client.fetchJWTBundle(.init()) }
      do {
        var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
        request.audience = ["backend"]
        _ = try await client.signJWTSVID(request, metadata: ["authorization": "Bearer good"])
        return nil as RPCError?
      } catch let error as RPCError {
        return error
      }
    }
    #expect(refused?.code == .unavailable)
    #expect(refused?.metadata[stringValues: "grpc-retry-pushback-ms"].first(where: { _ in true }) == "250")
    let rate = IstioCertificateSignerAdmissionTests.Gate(
      refusal: AdmissionRefusal(.callerRate, retryAfter: .seconds(1)))
    try await self.withService(admission: rate) { client in
      var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
      request.audience = ["backend"]
      await #expect(throws: RPCError.self) {
        _ = try await client.signJWTSVID(request, metadata: ["authorization": "Bearer node"])
      }
    }
    #expect(rate.asked.withLock { $0 } == [Self.node])
    #expect(rate.ended.withLock { $0 } == 1)
  }

  @Test func withoutKeysBothMethodsAreUnimplementedSayingWhy() async throws {
    let keys = JWTSVIDSigningService.Keys.unimplemented("ca serve --datastore signs no JWT-SVIDs yet")
    try await self.withService(keys: keys) { client in
      for call in 0..<2 {
        do {
          if call == 0 {
            _ = try await client.fetchJWTBundle(.init())
          } else {
            var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
            request.audience = ["backend"]
            _ = try await client.signJWTSVID(request, metadata: ["authorization": "Bearer good"])
          }
          Issue.record("answered without keys")
        } catch let error as RPCError {
          #expect(error.code == .unimplemented)
          #expect(error.message.contains("--datastore"))
        }
      }
    }
  }

  @Test func aRotationPublishesTheNextKeyBeforeItSigns() async throws {
    let before = try await self.sign().get()
    self.ring.rootPrepared(at: Fixtures.now)
    let prepared = try await self.bundle()
    #expect(prepared.keys.count == 2)
    #expect(try await self.sign().get().contains(".") && self.ring.current.signing.kid == prepared.keys[0].kid)
    self.ring.rootSwitched(at: Fixtures.now)
    let after = try await self.sign().get()
    let validator = JWTSVIDValidator(bundles: [try await self.bundle()])
    #expect(try validator.validate(before, audience: "backend", now: Fixtures.now).spiffeID == Fixtures.identity)
    #expect(try validator.validate(after, audience: "backend", now: Fixtures.now).spiffeID == Fixtures.identity)
    #expect(self.ring.current.signing.kid == prepared.keys[1].kid)
  }
}

extension Result {
  fileprivate var failure: Failure? {
    if case .failure(let failure) = self { return failure }
    return nil
  }
}
