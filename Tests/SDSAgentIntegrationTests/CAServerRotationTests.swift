import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// `sds-agent ca serve` rotating its root, over real sockets: its admin endpoint on a Unix
/// socket, and clients that trust one root or the other over TLS on TCP.
@Suite(.timeLimit(.minutes(2))) struct CAServerRotationTests {
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  func configuration(
    _ directory: String, issuer: TokenIssuer, maximumTTL: Duration, rootOverlap: Duration? = nil,
    caSource: AgentConfiguration.CASource = .generated
  ) -> CAServerConfiguration {
    CAServerConfiguration(
      host: "127.0.0.1", port: 0, stateDirectory: directory + "/ca", caSource: caSource, jwtKeysFile: issuer.keysFile,
      maximumTTL: maximumTTL, admin: .unixSocket(path: directory + "/admin.sock"), rootOverlap: rootOverlap)
  }

  func withCAServer<R: Sendable>(
    _ configuration: CAServerConfiguration,
    _ body: (_ server: CAServer, _ port: Int) async throws -> R
  ) async throws -> R {
    let server = try await CAServer.build(configuration: configuration, logger: Logger(label: "ca"))
    return try await withThrowingTaskGroup(of: Void.self) { group in
      let (listening, ready) = AsyncStream.makeStream(of: String.self)
      group.addTask { try await server.run { ready.yield($0) } }
      var port = 0
      for await address in listening {
        port = Int(address.split(separator: ":").last ?? "") ?? 0
        break
      }
      await server.waitForAdminEndpoint()
      defer { group.cancelAll() }
      return try await body(server, port)
    }
  }

  func admin(_ method: String, _ path: String, _ directory: String) async throws -> AdminClient.Response {
    try await AdminClient.request(method, path, at: .unixSocket(path: directory + "/admin.sock"))
  }

  /// A certificate from the CA at `port`, over a connection that trusts only the roots in `roots`.
  func certify(port: Int, roots: String, _ directory: String, timeout: Duration = .seconds(10)) async throws
    -> IssuedSVID
  {
    let client = try IstioCAClient(
      configuration: try IstioCAConfiguration(
        host: "127.0.0.1", port: port, rootsFile: roots, tokenFile: directory + "/token", requestTimeout: timeout),
      logger: Logger(label: "test"))
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      defer { group.cancelAll() }
      return try await client.certify(
        identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60), now: Date(),
        credential: .agent)
    }
  }

  /// Waits for `condition` on the rotation, woken by its phase changes (the suite's time limit
  /// bounds the wait).
  func until(
    _ what: String, on rotation: RootRotationSupervisor<ContinuousClock>?,
    _ condition: @escaping @Sendable (RootRotation?) -> Bool
  ) async throws {
    let rotation = try #require(rotation, "\(what): no rotation supervisor")
    await rotation.waitUntil(condition)
  }

  /// A new directory with a token file of the frontend's, and its issuer.
  func fixture() async throws -> (directory: String, issuer: TokenIssuer) {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token().write(toFile: directory + "/token", atomically: true, encoding: .utf8)
    return (directory, issuer)
  }

  func trust(_ response: AdminClient.Response) throws -> AdminAPI.Trust {
    try response.decode(AdminAPI.Trust.self)
  }

  @Test func answersWithBothRootsThenSwitchesItsLeavesAndItsTLSCertificateThenRetiresTheOldRoot() async throws {
    let fixture = try await self.fixture()
    let directory = fixture.directory
    // The overlap outlasts the refused call below (its timeout, and the client's one reconnect
    // window) and the calls before it on a loaded machine (a 6 s overlap was met twice at a load
    // average of 10), so that the call cannot meet the switch.
    let configuration = self.configuration(
      directory, issuer: fixture.issuer, maximumTTL: .seconds(2), rootOverlap: .seconds(12))
    try await self.withCAServer(configuration) { server, port in
      let oldRootFile = directory + "/ca/ca-cert.pem"
      let old = try Certificate(pemEncoded: try String(contentsOfFile: oldRootFile, encoding: .utf8))
      // An overlap shorter than --max-ttl is refused, saying why; nothing is prepared.
      let short = try await self.admin("POST", "/ca/rotate-root?overlap=1s", directory)
      #expect(short.status == 400)
      #expect(short.body.contains("at least --max-ttl (2s)") && short.body.contains("only when it renews"))
      #expect(server.rotation?.current == nil)

      let started = try await self.admin("POST", "/ca/rotate-root", directory)
      #expect(started.status == 202, "\(started.body)")
      #expect(try self.trust(started).phase == .prepared)
      let again = try await self.admin("POST", "/ca/rotate-root", directory)
      #expect(again.status == 409 && again.body.contains("phase prepared"), "\(again.body)")
      let next = try #require(server.ca.roots.next?.certificate)
      let newRootFile = directory + "/new-root.pem"
      try (try next.pemString() + "\n").write(toFile: newRootFile, atomically: true, encoding: .utf8)

      // The overlap: the old root signs; the answer carries both roots; the TLS certificate is the old root's.
      let during = try await self.certify(port: port, roots: oldRootFile, directory)
      #expect(during.certifiedKey.chain[0].issuer == old.subject)
      #expect(Set(during.trustBundle.roots) == [old, next])
      await #expect(throws: CertificateAuthorityError.self) {
        _ = try await self.certify(port: port, roots: newRootFile, directory, timeout: .seconds(2))
      }

      // The switch, one overlap later: there are no acknowledgements to wait for.
      try await self.until("the switch", on: server.rotation) { $0?.phase == .switched }
      #expect(server.servingChain[0].issuer == next.subject)
      let after = try await self.certify(port: port, roots: newRootFile, directory)
      #expect(after.certifiedKey.chain[0].issuer == next.subject)
      #expect(Set(after.trustBundle.roots) == [old, next])
      let trust = try self.trust(try await self.admin("GET", "/debug/trust", directory))
      #expect(trust.phase == .switched)

      // The retirement, one --max-ttl after the switch: only the new root is left.
      try await self.until("the retirement", on: server.rotation) { $0 == nil }
      let retired = try await self.certify(port: port, roots: newRootFile, directory)
      #expect(retired.trustBundle.roots == [next])
    }
  }

  @Test func aRestartResumesTheRotationAtItsDeadlines() async throws {
    let fixture = try await self.fixture()
    let configuration = self.configuration(
      fixture.directory, issuer: fixture.issuer, maximumTTL: .seconds(60), rootOverlap: .seconds(600))
    let switchAt = try await self.withCAServer(configuration) { server, _ in
      let started = try await self.admin("POST", "/ca/rotate-root", fixture.directory)
      #expect(started.status == 202)
      return try #require(server.rotation?.current?.switchAt)
    }
    try await self.withCAServer(configuration) { server, _ in
      #expect(server.rotation?.current?.phase == .prepared)
      // The record keeps whole seconds.
      let resumed = try #require(server.rotation?.current?.switchAt)
      #expect(abs(resumed.timeIntervalSince(switchAt)) < 1)
      #expect(server.ca.trustBundle.roots.count == 2)
    }
  }

  @Test func anOverlapShorterThanTheMaximumTTLStopsTheStart() async throws {
    let fixture = try await self.fixture()
    let configuration = self.configuration(
      fixture.directory, issuer: fixture.issuer, maximumTTL: .seconds(600), rootOverlap: .seconds(300))
    await #expect {
      _ = try await CAServer.build(configuration: configuration, logger: Logger(label: "ca"))
    } throws: { error in
      let error = error as! ConfigurationError
      return error.key == "root-overlap" && error.value == "5m" && error.allowed.contains("at least --max-ttl (10m)")
    }
  }

  @Test func theOperatorsCAIsNotRotated() async throws {
    let fixture = try await self.fixture()
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    for (text, name, mode) in [
      (try root.certificate.pemString(), "root.pem", 0o644),
      (try root.privateKey.serializeAsPEM().pemString, "key.pem", 0o600),
    ] {
      _ = FileManager.default.createFile(
        atPath: fixture.directory + "/" + name, contents: Data((text + "\n").utf8),
        attributes: [.posixPermissions: mode])
    }
    let configuration = self.configuration(
      fixture.directory, issuer: fixture.issuer, maximumTTL: .seconds(600),
      caSource: .files(certificate: fixture.directory + "/root.pem", key: fixture.directory + "/key.pem", chain: nil))
    try await self.withCAServer(configuration) { server, _ in
      #expect(server.rotation == nil)
      let refused = try await self.admin("POST", "/ca/rotate-root", fixture.directory)
      #expect(refused.status == 409 && refused.body.contains("operator's files"), "\(refused.body)")
      let trust = try self.trust(try await self.admin("GET", "/debug/trust", fixture.directory))
      #expect(trust.rotatable == false)
      #expect(trust.notRotatable?.contains("--ca-cert") == true)
    }
  }
}
