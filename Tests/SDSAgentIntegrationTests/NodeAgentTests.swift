import Foundation
import GRPCCore
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

#if canImport(Glibc)
  import Glibc
#endif

/// Node-agent mode over the real Unix socket: callers identified by the kernel's peer
/// credentials or by forwarded tokens, each served only its own identity.
@Suite(.timeLimit(.minutes(2))) struct NodeAgentTests {
  static let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  static let gateway = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/gateway")

  func builder(
    _ identification: CallerIdentification,
    rules: [WorkloadRule] = [],
    jwtKeysFile: String? = nil,
    limits: CallerLimits = .init(),
    directory: String = TemporaryDirectory.make()
  ) -> AgentConfigurationBuilder {
    var builder = AgentConfigurationBuilder(directory: directory)
    builder.identification = identification
    builder.rules = rules
    builder.jwtKeysFile = jwtKeysFile
    builder.limits = limits
    return builder
  }

  func configuration(
    _ identification: CallerIdentification,
    rules: [WorkloadRule] = [],
    jwtKeysFile: String? = nil,
    limits: CallerLimits = .init(),
    directory: String = TemporaryDirectory.make()
  ) throws -> AgentConfiguration {
    try self.builder(identification, rules: rules, jwtKeysFile: jwtKeysFile, limits: limits, directory: directory)
      .build()
  }

  /// Opens a stream for `names` and returns its first response, or the error that ended it.
  func firstResponse(
    _ running: RunningAgent,
    names: [String] = ["default", "ROOTCA"],
    metadata: Metadata = [:]
  ) async throws -> SDSStream.Response? {
    try await SDSClient.withConnection(socketPath: running.socketPath) { client in
      try await SDSStream.with(client: client, metadata: metadata) { stream in
        stream.request(names)
        return try await stream.next()
      }
    }
  }

  func expectRefusal(
    _ code: RPCError.Code,
    mentioning fragments: [String],
    _ body: () async throws -> SDSStream.Response?
  ) async {
    await #expect {
      _ = try await body()
    } throws: { error in
      guard let error = error as? RPCError else { return false }
      return error.code == code && fragments.allSatisfy(error.message.contains)
    }
  }

  @Test func theCallersUIDPicksItsIdentityAndAForgedCarrierHeaderIsIgnored() async throws {
    let rules = [
      WorkloadRule(uid: getuid() + 1, identity: Self.gateway),
      WorkloadRule(uid: getuid(), identity: Self.frontend),
    ]
    try await RunningAgent.with(try self.configuration(.peer, rules: rules)) { running in
      // A client claiming to be another uid in the carrier header gets its real uid's identity.
      var forged = Metadata()
      forged.addString("pid=1;uid=\(getuid() + 1);gid=0", forKey: PeerCredentials.carrierKey)
      let response = try #require(
        try await self.firstResponse(
          running, names: [Self.frontend.description, "spiffe://cluster.local"], metadata: forged))
      let secrets = try response.secrets()
      #expect(secrets.map(\.name) == [Self.frontend.description, "spiffe://cluster.local"])
      let certificate = try #require(secrets.first { $0.kind == .tlsCertificate })
      let bundle = try #require(secrets.first { $0.kind == .validationContext })
      #expect(certificate.certificates[0].spiffeIDs == [Self.frontend])
      try await certificate.expectValid(against: bundle, identity: Self.frontend)
      #expect(running.agent.identities.identities == [running.agent.identities.pinnedIdentity, Self.frontend])
    }
  }

  @Test func streamsOfOneIdentityShareOneKeyAndIdleIdentitiesAreDropped() async throws {
    let rules = [WorkloadRule(uid: getuid(), identity: Self.frontend)]
    try await RunningAgent.with(try self.configuration(.peer, rules: rules)) { running in
      let issuedBefore = running.agent.counters[.certificatesIssued]
      let serials = try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<4 {
          group.addTask {
            let response = try #require(try await self.firstResponse(running, names: ["default"]))
            return try #require(try response.secrets().first?.certificates.first?.serialHex)
          }
        }
        return try await group.reduce(into: Set<String>()) { $0.insert($1) }
      }
      #expect(serials.count == 1)
      #expect(running.agent.counters[.certificatesIssued] == issuedBefore + 1)
      // With its streams gone the identity is idle, and the supervisor's timer will drop it
      // (IdentitySupervisorTests drives that timer with a manual clock).
      let rows = running.agent.identities.snapshot()
      let row = try #require(rows.first { $0.identity == Self.frontend })
      #expect(row.streams == 0 && row.idleSince != nil && row.phase == .serving)
    }
  }

  @Test func theAdminEndpointRotatesAWorkloadAndItIsPushedOnItsOpenStream() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = self.builder(.peer, rules: [WorkloadRule(uid: getuid(), identity: Self.frontend)])
    builder.admin = admin
    let configuration = try builder.build()
    try await RunningAgent.with(configuration) { running in
      await running.agent.waitForAdminEndpoint()
      try await SDSClient.withConnection(socketPath: running.socketPath) { client in
        try await SDSStream.with(client: client) { stream in
          stream.request(["default"])
          let first = try #require(try await stream.next())
          let before = try #require(try first.secrets().first?.certificates.first?.serialHex)
          stream.request(["default"], acknowledging: first)
          let secrets = try await AdminClient.request("GET", "/debug/secrets", at: admin)
            .decode([AdminAPI.Secret].self)
          #expect(
            secrets.contains {
              guard case .certificate(let certificate) = $0 else { return false }
              return certificate.identity == Self.frontend.description && certificate.serial == before
            })
          let rotated = try await AdminClient.request("POST", "/rotate?identity=\(Self.frontend)", at: admin)
          #expect(rotated.status == 200)
          let pushed = try #require(try await stream.next())
          let after = try #require(try pushed.secrets().first?.certificates.first)
          #expect(after.serialHex != before && rotated.body.contains(after.serialHex))
          #expect(after.spiffeIDs == [Self.frontend])
          let unknown = try await AdminClient.request("POST", "/rotate?identity=\(Self.gateway)", at: admin)
          #expect(unknown.status == 404 && unknown.body.contains(Self.frontend.description))
          stream.request(["default"], acknowledging: pushed)
        }
      }
    }
  }

  @Test func anUnmappedCallerIsRefusedWithWhatWasSeenAndGetsNothing() async throws {
    let rules = [WorkloadRule(uid: getuid() + 1, identity: Self.gateway)]
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = self.builder(.peer, rules: rules)
    builder.admin = admin
    let configuration = try builder.build()
    try await RunningAgent.with(configuration) { running in
      await self.expectRefusal(.permissionDenied, mentioning: ["uid=\(getuid())", "gid=\(getgid())", "pid="]) {
        try await self.firstResponse(running)
      }
      #expect(running.agent.counters[.callersRefused] == 1)
      await running.agent.waitForAdminEndpoint()
      let metrics = try await AdminClient.request("GET", "/metrics", at: admin).body
      #expect(metrics.contains(#"sds_agent_callers_refused_total{reason="permission_denied"} 1"#))
      #expect(running.agent.counters[.responsesSent] == 0)
      #expect(running.agent.identities.identities == [running.agent.identities.pinnedIdentity])
    }
  }

  @Test func anotherIdentitysNameIsRefused() async throws {
    let rules = [WorkloadRule(uid: getuid(), identity: Self.frontend)]
    try await RunningAgent.with(try self.configuration(.peer, rules: rules)) { running in
      await self.expectRefusal(.permissionDenied, mentioning: [Self.gateway.description, Self.frontend.description]) {
        try await self.firstResponse(running, names: ["default", Self.gateway.description])
      }
      #expect(running.agent.counters[.responsesSent] == 0)
    }
  }

  @Test(arguments: ["istio_sds_credentials_header-bin", "istio_sds_credentail_header-bin", "authorization"])
  func aForwardedTokenNamesTheIdentity(header: String) async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    let configuration = try self.configuration(.token, jwtKeysFile: issuer.keysFile, directory: directory)
    try await RunningAgent.with(configuration) { running in
      let token = try await issuer.token(subject: "system:serviceaccount:web:gateway")
      var metadata = Metadata()
      if header == "authorization" {
        metadata.addString("Bearer \(token)", forKey: header)
      } else {
        metadata.addBinary(Array(token.utf8), forKey: header)
      }
      let response = try #require(try await self.firstResponse(running, names: ["default"], metadata: metadata))
      #expect(try response.secrets()[0].certificates[0].spiffeIDs == [Self.gateway])
    }
  }

  @Test func aForgedOrMissingTokenIsUnauthenticated() async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    let forger = try await TokenIssuer(directory: TemporaryDirectory.make())
    let configuration = try self.configuration(.token, jwtKeysFile: issuer.keysFile, directory: directory)
    try await RunningAgent.with(configuration) { running in
      var forged = Metadata()
      forged.addBinary(Array(try await forger.token().utf8), forKey: "istio_sds_credentials_header-bin")
      await self.expectRefusal(.unauthenticated, mentioning: ["token was refused"]) {
        try await self.firstResponse(running, metadata: forged)
      }
      await self.expectRefusal(.unauthenticated, mentioning: ["no forwarded token"]) {
        try await self.firstResponse(running)
      }
      #expect(running.agent.counters[.callersRefused] == 2)
      #expect(running.agent.counters[.responsesSent] == 0)
    }
  }

  @Test func peerAndTokenMustNameTheSameIdentity() async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    let configuration = try self.configuration(
      .peerAndToken, rules: [WorkloadRule(uid: getuid(), identity: Self.frontend)], jwtKeysFile: issuer.keysFile,
      directory: directory)
    try await RunningAgent.with(configuration) { running in
      var other = Metadata()
      other.addBinary(
        Array(try await issuer.token(subject: "system:serviceaccount:web:gateway").utf8),
        forKey: "istio_sds_credentials_header-bin")
      await self.expectRefusal(.permissionDenied, mentioning: [Self.gateway.description, Self.frontend.description]) {
        try await self.firstResponse(running, metadata: other)
      }
      var same = Metadata()
      same.addBinary(Array(try await issuer.token().utf8), forKey: "istio_sds_credentials_header-bin")
      let response = try #require(try await self.firstResponse(running, names: ["default"], metadata: same))
      #expect(try response.secrets()[0].certificates[0].spiffeIDs == [Self.frontend])
    }
  }

  @Test func aCallerOverItsStreamRateIsTurnedAway() async throws {
    let rules = [WorkloadRule(uid: getuid(), identity: Self.frontend)]
    let limits = CallerLimits(streamRate: Rate(count: 2, period: .seconds(3600)))
    try await RunningAgent.with(try self.configuration(.peer, rules: rules, limits: limits)) { running in
      for _ in 0..<2 {
        let response = try await self.firstResponse(running, names: ["default"])
        #expect(response != nil)
      }
      await self.expectRefusal(.resourceExhausted, mentioning: [Self.frontend.description, "2/h"]) {
        try await self.firstResponse(running, names: ["default"])
      }
      #expect(running.agent.counters[.callersRefused] == 1)
      // A reloaded rate applies at once: the caller starts with a full bucket at the new rate.
      let admission = running.agent.admission
      admission.update(
        attestor: admission.attestor, limits: CallerLimits(streamRate: Rate(count: 10, period: .seconds(1))))
      let served = try await self.firstResponse(running, names: ["default"])
      #expect(served != nil)
    }
  }

  // MARK: - Fetch mode

  func fetchModeConfiguration(
    _ identification: CallerIdentification,
    directory: String,
    port: Int,
    root: String
  ) throws -> AgentConfiguration {
    var builder = self.builder(
      identification, rules: identification.usesPeer ? [WorkloadRule(uid: getuid(), identity: Self.frontend)] : [],
      directory: directory)
    builder.identity = Self.node
    builder.istioCA = try IstioCAConfiguration(
      host: "127.0.0.1", port: port, rootsFile: root, tokenFile: directory + "/token")
    return try builder.build()
  }

  static let node = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/istio-system/sa/sds-agent")

  @Test(arguments: [true, false])
  func aPeerIdentifiedWorkloadIsCertifiedByImpersonationOnlyIfTheCATrustsTheNode(trusted: Bool) async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token(subject: "system:serviceaccount:istio-system:sds-agent").write(
      toFile: directory + "/token", atomically: true, encoding: .utf8)
    try await FetchModeTests().withCAServer(
      directory: directory, issuer: issuer, trustedNodes: trusted ? [Self.node] : []
    ) { port, root in
      let configuration = try self.fetchModeConfiguration(.peer, directory: directory, port: port, root: root)
      try await RunningAgent.with(configuration) { running in
        if trusted {
          let response = try #require(try await self.firstResponse(running, names: ["default"]))
          #expect(try response.secrets()[0].certificates[0].spiffeIDs == [Self.frontend])
        } else {
          await self.expectRefusal(
            .permissionDenied, mentioning: ["not a trusted node identity", Self.frontend.description]
          ) {
            try await self.firstResponse(running, names: ["default"])
          }
        }
      }
    }
  }

  @Test func aForwardedTokenIsWhatTheCAAuthenticates() async throws {
    let directory = TemporaryDirectory.make()
    let issuer = try await TokenIssuer(directory: directory)
    try await issuer.token(subject: "system:serviceaccount:istio-system:sds-agent").write(
      toFile: directory + "/token", atomically: true, encoding: .utf8)
    try await FetchModeTests().withCAServer(directory: directory, issuer: issuer) { port, root in
      let configuration = try self.fetchModeConfiguration(.token, directory: directory, port: port, root: root)
      try await RunningAgent.with(configuration) { running in
        var metadata = Metadata()
        metadata.addBinary(Array(try await issuer.token().utf8), forKey: "istio_sds_credentials_header-bin")
        let response = try #require(try await self.firstResponse(running, names: ["default"], metadata: metadata))
        #expect(try response.secrets()[0].certificates[0].spiffeIDs == [Self.frontend])

        // A token the CA does not accept gets nothing, not even the frontend's cached certificate.
        let forger = try await TokenIssuer(directory: TemporaryDirectory.make())
        var forged = Metadata()
        forged.addBinary(Array(try await forger.token().utf8), forKey: "istio_sds_credentials_header-bin")
        await self.expectRefusal(.unauthenticated, mentioning: ["CA refused"]) {
          try await self.firstResponse(running, names: ["default"], metadata: forged)
        }
      }
    }
  }
}
