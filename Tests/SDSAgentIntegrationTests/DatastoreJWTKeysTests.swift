import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `ca serve --datastore` replicas on one PostgreSQL sign JWT-SVIDs with the same keys: a token
/// of one validates against the other's `FetchJWTBundle`, through a root rotation prepared on one
/// replica and followed by the other, which publishes the prepared key before it signs with it;
/// a replica started after the switch derives the same keys.
@Suite(.serialized, .enabled(if: TemporaryPostgreSQL.isInstalled), .timeLimit(.minutes(2)))
struct DatastoreJWTKeysTests {
  typealias Client = Sdsagent_Ca_V1_JWTSVIDService.Client<InProcessTransport.Client>
  static let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  struct Tokens: CallerAuthenticator {
    func authenticate(bearerToken: String) async -> CallerAuthentication {
      bearerToken == "good" ? .authenticated(DatastoreJWTKeysTests.identity) : .refused("unknown token")
    }
  }

  func replica(_ name: String, _ server: TemporaryPostgreSQL, _ directory: String, issuer: TokenIssuer)
    async throws -> CAServer
  {
    var configuration = CAServerConfiguration(
      host: "127.0.0.1", port: 0, stateDirectory: "\(directory)/\(name)", jwtKeysFile: issuer.keysFile,
      maximumTTL: .seconds(600))
    configuration.datastore = DatastoreConfiguration(
      url: server.url(database: "ca"), keyEncryptionKeyFile: directory + "/kek", replicaName: name)
    return try await CAServer.build(configuration: configuration, logger: Logger(label: "ca-\(name)"))
  }

  /// Runs `body` with a client of the replica's JWTSVIDService over the in-process transport.
  func withService<R: Sendable>(_ replica: CAServer, _ body: (Client) async throws -> R) async throws -> R {
    let service = JWTSVIDSigningService(
      keys: .ring(try #require(replica.jwtKeys)), authenticator: Tokens(), logger: Logger(label: "test"))
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: [service]) { _ in
      try await withGRPCClient(transport: transport.client) { client in try await body(Client(wrapping: client)) }
    }
  }

  func sign(_ replica: CAServer) async throws -> String {
    var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
    request.audience = ["backend"]
    return try await self.withService(replica) { client in
      try await client.signJWTSVID(request, metadata: ["authorization": "Bearer good"]).token
    }
  }

  func bundle(_ replica: CAServer) async throws -> JWTBundle {
    let response = try await self.withService(replica) { client in
      try await client.fetchJWTBundle(Sdsagent_Ca_V1_FetchJWTBundleRequest())
    }
    struct Document: Decodable { let keys: [JWK] }
    let keys = try JSONDecoder().decode(Document.self, from: response.jwks).keys.map { try JWTPublicKey(jwk: $0) }
    return JWTBundle(trustDomain: try TrustDomainName(parsing: response.trustDomain), keys: keys)
  }

  /// The kid of `token` once it validates against `replica`'s bundle.
  func validatedKid(_ token: String, by replica: CAServer) async throws -> String {
    let validator = JWTSVIDValidator(bundles: [try await self.bundle(replica)])
    #expect(try validator.validate(token, audience: "backend", now: Date()).spiffeID == Self.identity)
    var header = String(token.prefix { $0 != "." }).replacingOccurrences(of: "-", with: "+")
      .replacingOccurrences(of: "_", with: "/")
    header += String(repeating: "=", count: (4 - header.count % 4) % 4)
    let json = try JSONSerialization.jsonObject(with: try #require(Data(base64Encoded: header)))
    return try #require((json as? [String: Any])?["kid"] as? String)
  }

  @Test func aTokenOfOneReplicaValidatesAgainstTheOthersBundleThroughARootRotation() async throws {
    let server = try TemporaryPostgreSQL()
    defer { server.stop() }
    try server.psql("CREATE DATABASE ca")
    let directory = TemporaryDirectory.make()
    _ = FileManager.default.createFile(
      atPath: directory + "/kek", contents: Data((0..<32).map { UInt8($0) }), attributes: [.posixPermissions: 0o600])
    let issuer = try await TokenIssuer(directory: directory)
    let a = try await self.replica("a", server, directory, issuer: issuer)
    let b = try await self.replica("b", server, directory, issuer: issuer)
    let (ringA, ringB) = (try #require(a.jwtKeys), try #require(b.jwtKeys))
    let old = ringA.current.signing.kid
    #expect(ringB.current.signing.kid == old)
    let beforeA = try await self.sign(a)
    #expect(try await self.validatedKid(beforeA, by: b) == old)
    #expect(try await self.validatedKid(try await self.sign(b), by: a) == old)

    // Prepared on a: b publishes the prepared key once it follows, and still signs with the old one.
    let rotation = try #require(a.rotation).start(overlap: .seconds(600))
    let next = try #require(ringA.current.next?.kid)
    #expect(next != old)
    try await #require(b.datastoreFollower).refresh()
    #expect(ringB.current.next?.kid == next)
    #expect(try await self.bundle(b).keys.map(\.kid).contains(next))
    #expect(try await self.validatedKid(try await self.sign(b), by: a) == old)

    // Switched (the step the supervisor records), followed by both: the new key signs, the old one stays published.
    var switched = rotation
    switched.switched(at: Date(), lastOldLeafExpiry: Date().addingTimeInterval(600))
    let datastore = CADatastore(
      address: try DatastoreAddress(parsing: server.url(database: "ca")),
      keyEncryptionKey: try KeyEncryptionKey.load(path: directory + "/kek"), replicaName: "a",
      logger: Logger(label: "test"))
    try datastore.switchRoot(switched)
    try await #require(a.datastoreFollower).refresh()
    try await #require(b.datastoreFollower).refresh()
    let afterB = try await self.sign(b)
    #expect(try await self.validatedKid(afterB, by: a) == next)
    #expect(try await self.validatedKid(try await self.sign(a), by: b) == next)
    #expect(try await self.validatedKid(beforeA, by: b) == old)
    #expect(ringA.current.retiring.map(\.key.kid) == [old])
    #expect(ringB.current.retiring.map(\.key.kid) == [old])

    // A replica started now derives the same keys, the old one retiring when the others retire it.
    let c = try await self.replica("c", server, directory, issuer: issuer)
    let ringC = try #require(c.jwtKeys)
    #expect(ringC.current.signing.kid == next && ringC.current.next == nil)
    #expect(ringC.current.retiring == ringB.current.retiring)
    #expect(try await self.validatedKid(beforeA, by: c) == old)
  }

  @Test func theDefaultLifetimeIsBoundedByTheMaximumTTLWithADatastore() {
    var configuration = CAServerConfiguration(
      host: "127.0.0.1", port: 0, stateDirectory: "/nonexistent", jwtKeysFile: "/nonexistent",
      maximumTTL: .seconds(60))
    #expect(configuration.effectiveJWTSVIDTTL == .seconds(300))
    configuration.datastore = DatastoreConfiguration(
      url: "postgresql://nobody@127.0.0.1:1/ca", keyEncryptionKeyFile: "")
    #expect(configuration.effectiveJWTSVIDTTL == .seconds(60))
    configuration.maximumTTL = .seconds(5)
    #expect(configuration.effectiveJWTSVIDTTL == .seconds(10))
    configuration.jwtSVIDTTL = .seconds(30)
    #expect(configuration.effectiveJWTSVIDTTL == .seconds(30))
  }

  /// Refused before the datastore is reached: nothing listens at its address.
  @Test func aJWTSVIDLifetimeLongerThanTheMaximumTTLIsRefusedWithADatastore() async throws {
    let directory = TemporaryDirectory.make()
    _ = FileManager.default.createFile(
      atPath: directory + "/kek", contents: Data(repeating: 7, count: 32), attributes: [.posixPermissions: 0o600])
    let issuer = try await TokenIssuer(directory: directory)
    var configuration = CAServerConfiguration(
      host: "127.0.0.1", port: 0, stateDirectory: directory + "/a", jwtKeysFile: issuer.keysFile,
      maximumTTL: .seconds(60))
    configuration.jwtSVIDTTL = .seconds(300)
    configuration.datastore = DatastoreConfiguration(
      url: "postgresql://nobody@127.0.0.1:1/ca", keyEncryptionKeyFile: directory + "/kek", replicaName: "a")
    await #expect {
      _ = try await CAServer.build(configuration: configuration, logger: Logger(label: "ca"))
    } throws: { error in
      let error = error as? ConfigurationError
      return error?.key == "jwt-svid-ttl" && error?.allowed.contains("at most --max-ttl (1m)") == true
    }
  }
}
