import Foundation
import GRPCCore
import JWTKit
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The agent in `--ca istio` mode against `sds-agent ca serve`, both over real sockets (TLS on
/// TCP to the CA, the Unix socket to the client), with tokens minted by jwt-kit.
@Suite(.timeLimit(.minutes(2))) struct FetchModeTests {
  func withCAServer<R: Sendable>(
    directory: String,
    issuer: TokenIssuer,
    trustedNodes: [SPIFFEID] = [],
    _ body: (_ port: Int, _ root: String) async throws -> R
  ) async throws -> R {
    let server = try await CAServer.build(
      configuration: CAServerConfiguration(
        host: "127.0.0.1",
        port: 0,
        stateDirectory: directory + "/ca",
        jwtKeysFile: issuer.keysFile,
        maximumTTL: .seconds(3600),
        trustedNodeIdentities: trustedNodes
      ),
      logger: Logger(label: "ca")
    )
    return try await withThrowingTaskGroup(of: Void.self) { group in
      let (listening, ready) = AsyncStream.makeStream(of: String.self)
      group.addTask { try await server.run { ready.yield($0) } }
      var port = 0
      for await address in listening {
        port = Int(address.split(separator: ":").last ?? "") ?? 0
        break
      }
      defer { group.cancelAll() }
      return try await body(port, directory + "/ca/ca-cert.pem")
    }
  }

  @Test func theAgentServesCertificatesFromTheCAAndRotatesThem() async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token().write(toFile: directory + "/token", atomically: true, encoding: .utf8)
    try await self.withCAServer(directory: directory, issuer: issuer) { port, root in
      var builder = AgentConfigurationBuilder(directory: directory)
      builder.identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
      builder.istioCA = try IstioCAConfiguration(
        host: "127.0.0.1",
        port: port,
        rootsFile: root,
        tokenFile: directory + "/token"
      )
      let configuration = try builder.build()
      try await RunningAgent.with(configuration) { running in
        await running.agent.cache.waitUntil { $0.svid != nil }
        let caRoot = try Certificate(pemEncoded: try String(contentsOfFile: root, encoding: .utf8))
        let first = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default", "ROOTCA"])
        #expect(first[0].spiffeID?.description == "spiffe://cluster.local/ns/web/sa/frontend")
        #expect(first[1].certificates == [caRoot])
        try await running.agent.rotate()
        let second = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
        #expect(second[0].certificates[0].serialNumber != first[0].certificates[0].serialNumber)
        #expect(second[0].certificates[0].issuer == caRoot.subject)
      }
    }
  }

  @Test func aRefusedTokenIsAConfigurationErrorAndNothingIsServed() async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token(audience: "somebody-else").write(
      toFile: directory + "/token", atomically: true, encoding: .utf8)
    try await self.withCAServer(directory: directory, issuer: issuer) { port, root in
      let client = try IstioCAClient(
        configuration: try IstioCAConfiguration(
          host: "127.0.0.1", port: port, rootsFile: root, tokenFile: directory + "/token"),
        logger: Logger(label: "test")
      )
      await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        defer { group.cancelAll() }
        await #expect {
          _ = try await client.certify(
            identity: try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend"),
            privateKey: try WorkloadKeyType.ecdsaP256.generate(),
            ttl: .seconds(60),
            now: Date(),
            credential: .agent
          )
        } throws: { error in
          let error = error as! CertificateAuthorityError
          return error.code == .refused && error.message.contains("unauthenticated")
            && error.message.contains("istio-ca")
        }
      }
    }
  }

  @Test(arguments: [
    ("expired", "expired"),
    ("wrong-key", "does not verify"),
    ("wrong-issuer", "issuer"),
    ("not-a-service-account", "system:serviceaccount"),
  ])
  func theCAServerRefusesBadTokens(kind: String, message: String) async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    let token: String
    switch kind {
    case "expired": token = try await issuer.token(expires: Date().addingTimeInterval(-60))
    case "wrong-key": token = try await TokenIssuer(directory: TemporaryDirectory.make()).token()
    case "wrong-issuer": token = try await issuer.token(issuer: "https://evil.example.com")
    default: token = try await issuer.token(subject: "user:alice")
    }
    let authenticator = try await JWTCallerAuthenticator.load(keysFile: issuer.keysFile, trustDomain: "cluster.local")
    guard case .refused(let reason) = await authenticator.authenticate(bearerToken: token) else {
      Issue.record("a \(kind) token was accepted")
      return
    }
    #expect(reason.contains(message), "\(reason)")
    let good = await authenticator.authenticate(bearerToken: try await issuer.token())
    #expect(good == .authenticated(try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")))
  }

  @Test func theCAServerAcceptsAJWKSDocument() async throws {
    let directory = TemporaryDirectory.make()
    let key = ES256PrivateKey()
    let parameters = try #require(key.publicKey.parameters)
    let jwks =
      #"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k1","x":"\#(parameters.x)","y":"\#(parameters.y)"}]}"#
    try jwks.write(toFile: directory + "/jwks.json", atomically: true, encoding: .utf8)
    let signing = JWTKeyCollection()
    await signing.add(ecdsa: key, kid: "k1")
    let token = try await signing.sign(
      ServiceAccountTokenClaims(
        iss: .init(value: "https://kubernetes.default.svc.cluster.local"),
        sub: .init(value: "system:serviceaccount:a:b"), aud: .init(value: ["istio-ca"]),
        exp: .init(value: Date().addingTimeInterval(60))),
      kid: "k1"
    )
    let authenticator = try await JWTCallerAuthenticator.load(
      keysFile: directory + "/jwks.json", trustDomain: "example.org")
    #expect(
      await authenticator.authenticate(bearerToken: token)
        == .authenticated(try SPIFFEID(parsing: "spiffe://example.org/ns/a/sa/b")))
  }
}
