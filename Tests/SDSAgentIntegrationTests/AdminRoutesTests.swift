import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The agent's admin routes over its real admin socket: each answer decodes as the document of
/// `AdminAPI` that `AdminClient`, `status` and the drills read, and each refusal says why.
@Suite(.timeLimit(.minutes(1))) struct AdminRoutesTests {
  /// Runs an agent with an admin socket for `body`.
  func withAgent(
    _ body: (RunningAgent, AgentConfiguration.AdminAddress) async throws -> Void
  ) async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      try await body(running, admin)
    }
  }

  @Test func streamsAreListedWithEveryFieldAndNullsForWhatIsUnknown() async throws {
    try await self.withAgent { running, admin in
      try await running.withClient(over: .unixSocket) { client in
        try await client.withStream { stream in
          stream.request(["default"], nodeID: "gateway-1")
          let first = try #require(try await stream.next())
          stream.request(["default"], acknowledging: first, nodeID: "gateway-1")
          await running.agent.counters.waitUntil { $0[.acks] == 1 }

          let response = try await AdminClient.request("GET", "/debug/streams", at: admin)
          #expect(response.status == 200)
          let streams = try response.decode([AdminAPI.Stream].self)
          let listed = try #require(streams.first)
          #expect(streams.count == 1)
          #expect(listed.nodeID == "gateway-1" && listed.resources == ["default"])
          #expect(listed.lastSentVersion == first.versionInfo && listed.lastAckedVersion == first.versionInfo)
          #expect(listed.lastNackedNonce == nil && listed.lastNackMessage == nil)
          #expect(response.body.contains(#""last_nacked_nonce" : null"#))
          #expect(response.body.contains(#""node_id" : "gateway-1""#))
        }
      }
    }
  }

  @Test func secretsListTheCertificateAndTheBundleWithoutKeyMaterial() async throws {
    try await self.withAgent { running, admin in
      let response = try await AdminClient.request("GET", "/debug/secrets", at: admin)
      #expect(response.status == 200)
      let secrets = try response.decode([AdminAPI.Secret].self)
      #expect(secrets.map(\.name) == ["default", "ROOTCA"])
      guard case .certificate(let certificate) = secrets.first, case .validationContext(let bundle) = secrets.last
      else {
        Issue.record("expected a certificate, then a bundle: \(secrets)")
        return
      }
      let served = try #require(running.agent.cache.current.svid)
      #expect(certificate.identity == running.agent.identities.pinnedIdentity.description)
      #expect(certificate.phase == "serving" && certificate.serial == served.leaf.serialHex)
      #expect(certificate.chainLength == served.chain.count && certificate.nextRotation != nil)
      #expect(certificate.lastError == nil && !response.body.contains("retry_at"))
      #expect(bundle.roots.count == 1)
      #expect(!response.body.contains("PRIVATE KEY"))
    }
  }

  @Test func rotateAnswersTheNewSerialAndRefusesAnUnknownIdentity() async throws {
    try await self.withAgent { running, admin in
      let before = running.agent.cache.current.svid?.leaf.serialHex
      let response = try await AdminClient.request("POST", "/rotate", at: admin)
      #expect(response.status == 200)
      let rotated = try response.decode(AdminAPI.Rotated.self)
      #expect(rotated.identity == running.agent.identities.pinnedIdentity.description)
      #expect(rotated.serial == running.agent.cache.current.svid?.leaf.serialHex && rotated.serial != before)

      let unknown = try await AdminClient.request(
        "POST", "/rotate?identity=spiffe://cluster.local/ns/x/sa/y", at: admin)
      #expect(unknown.status == 404)
      #expect(unknown.body.hasPrefix("unknown identity spiffe://cluster.local/ns/x/sa/y; this agent serves "))
      #expect(throws: AgentError.self) { try unknown.decode(AdminAPI.Rotated.self) }
    }
  }

  @Test func trustShowsTheRootAndARotationOnceStarted() async throws {
    try await self.withAgent { _, admin in
      let idle = try await AdminClient.request("GET", "/debug/trust", at: admin).decode(AdminAPI.Trust.self)
      #expect(idle.trustDomain == "cluster.local" && idle.phase == .idle && idle.rotatable)
      #expect(idle.roots.map(\.phase) == [.trusted] && idle.federated.isEmpty && idle.rotation == nil)

      let invalid = try await AdminClient.request("POST", "/ca/rotate-root?overlap=soon", at: admin)
      #expect(invalid.status == 400 && invalid.body.hasPrefix("invalid overlap \"soon\""))

      let started = try await AdminClient.request("POST", "/ca/rotate-root?overlap=2h", at: admin)
      #expect(started.status == 202)
      let trust = try started.decode(AdminAPI.Trust.self)
      let rotation = try #require(trust.rotation)
      #expect(trust.phase == .prepared && rotation.overlap == "2h" && rotation.nextStep.step == .switch)
      #expect(rotation.oldRoot == idle.roots.first?.serial && rotation.streamsAwaited != nil)
      #expect(rotation.switchedAt == nil && rotation.retireAt == nil)
      #expect(Set(trust.roots.map(\.phase)) == [.signing, .next])
      #expect(trust.roots.first { $0.phase == .next }?.serial == rotation.newRoot)
      #expect(started.body.contains(#""retire_at" : null"#))

      let again = try await AdminClient.request("POST", "/ca/rotate-root", at: admin)
      #expect(again.status == 409 && again.body.hasPrefix("cannot rotate the root: "))
    }
  }

  @Test func healthReadinessAndStatusAnswer() async throws {
    try await self.withAgent { running, admin in
      let health = try await AdminClient.request("GET", "/healthz", at: admin)
      #expect(health.status == 200 && health.body == "ok\n")
      let ready = try await AdminClient.request("GET", "/readyz", at: admin)
      #expect(ready.status == 200 && ready.body == "ready\n")
      let status = try await AdminClient.request("GET", "/status", at: admin)
        .decode(NodeStatus.self, decoder: NodeStatus.decoder)
      #expect(status.isHealthy && status.identities.map(\.pinned) == [true])
      let metrics = try await AdminClient.request("GET", "/metrics", at: admin)
      #expect(metrics.status == 200 && metrics.body.contains("sds_agent_streams_open 0"))
    }
  }

  @Test(arguments: [
    ("GET", "/rotate", 405, "method GET not allowed on /rotate\n"),
    ("POST", "/debug/secrets", 405, "method POST not allowed on /debug/secrets\n"),
    ("DELETE", "/status", 405, "method DELETE not allowed on /status\n"),
    ("GET", "/nowhere", 404, "not found: /nowhere; try /metrics"),
  ])
  func aWrongMethodOrPathIsRefusedSayingWhatIsServed(
    method: String, path: String, status: Int, body: String
  ) async throws {
    try await self.withAgent { _, admin in
      let response = try await AdminClient.request(method, path, at: admin)
      #expect(response.status == status)
      #expect(response.body.hasPrefix(body))
    }
  }
}
