import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The fetch-mode agent's client of `ca serve`'s `JWTSVIDService` over real TLS: a token the CA
/// signs verifies against the bundle it publishes, a workload's is refused without impersonation
/// rights, and what the CA answers maps onto the Workload API's statuses.
@Suite(.timeLimit(.minutes(2))) struct FetchModeJWTSVIDTests {
  static let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  func withClient(_ body: (IstioCAClient) async throws -> Void) async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token().write(toFile: directory + "/token", atomically: true, encoding: .utf8)
    try await FetchModeTests().withCAServer(directory: directory, issuer: issuer) { port, root in
      let keyFile = directory + "/ca/" + JWTKeyFiles.keyFileName
      let permissions = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
      #expect(permissions == 0o600)
      let client = try IstioCAClient(
        configuration: try IstioCAConfiguration(
          host: "127.0.0.1", port: port, rootsFile: root, tokenFile: directory + "/token"),
        logger: Logger(label: "test"))
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        defer { group.cancelAll() }
        try await body(client)
      }
    }
  }

  @Test func theCAsTokenVerifiesAgainstTheBundleItPublishes() async throws {
    try await self.withClient { client in
      let bundle = try await client.fetchJWTBundle()
      #expect(bundle.trustDomain.name == "cluster.local" && bundle.keys.count == 1)
      let token = try await client.signJWTSVID(for: Self.frontend, audience: ["backend"], credential: .agent)
      let validated = try JWTSVIDValidator(bundles: [bundle]).validate(token, audience: "backend", now: Date())
      #expect(validated.spiffeID == Self.frontend)
      let workload = try SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/cart")
      let refused = await #expect(throws: JWTSVIDFailure.self) {
        _ = try await client.signJWTSVID(for: workload, audience: ["backend"], credential: .impersonation)
      }
      #expect(refused?.code == .notEntitled && refused?.rpcErrorCode == .permissionDenied)
      let tooMany = await #expect(throws: JWTSVIDFailure.self) {
        _ = try await client.signJWTSVID(
          for: Self.frontend, audience: (0..<17).map { "a\($0)" }, credential: .agent)
      }
      #expect(tooMany?.code == .invalidRequest)
    }
  }

  @Test func theCAsBundleIsBoundedAndOfItsTrustDomain() throws {
    let key = JWTSigningKey().publicKey.jwkValue
    var rsa = key
    rsa.kty = "RSA"
    var x509 = key
    x509.use = "x509-svid"
    func response(_ keys: [JWK], domain: String = "cluster.local") throws -> Sdsagent_Ca_V1_FetchJWTBundleResponse {
      struct Document: Encodable { let keys: [JWK] }
      var response = Sdsagent_Ca_V1_FetchJWTBundleResponse()
      response.trustDomain = domain
      response.jwks = try JSONEncoder().encode(Document(keys: keys))
      return response
    }
    let bundle = try IstioCAClient.bundle(try response([key, rsa, x509]))
    #expect(bundle.keys.map(\.kid) == [key.kid])
    #expect(throws: JWTSVIDFailure.self) { try IstioCAClient.bundle(try response([key], domain: "not a domain")) }
    #expect(throws: JWTSVIDFailure.self) {
      try IstioCAClient.bundle(try response(Array(repeating: key, count: IstioCAClient.maximumJWTKeys + 1)))
    }
  }

  @Test(arguments: [
    (RPCError.Code.unimplemented, JWTSVIDFailure.Code.unimplemented),
    (.permissionDenied, .notEntitled), (.unauthenticated, .notEntitled), (.invalidArgument, .invalidRequest),
    (.unavailable, .unavailable), (.deadlineExceeded, .unavailable),
  ])
  func theCAsAnswerBecomesTheWorkloadsStatus(_ answer: RPCError.Code, _ expected: JWTSVIDFailure.Code) {
    let error = IstioCAClient.classify(RPCError(code: answer, message: "because"), address: "127.0.0.1:1")
    #expect(IstioCAClient.jwtFailure(error).code == expected)
  }
}
