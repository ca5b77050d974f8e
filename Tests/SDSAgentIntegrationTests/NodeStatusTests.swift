import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `GET /status` and what `sds-agent status` makes of it.
@Suite(.timeLimit(.minutes(1))) struct NodeStatusTests {
  @Test func aServingAgentIsHealthyAndShowsItsIdentityBundleAndStreams() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      try await running.withClient(over: .unixSocket) { client in
        try await client.withStream { stream in
          stream.request(["default", "ROOTCA"], nodeID: "envoy-status-test")
          let first = try #require(try await stream.next())
          stream.request(["default", "ROOTCA"], acknowledging: first, nodeID: "envoy-status-test")
          await running.agent.counters.waitUntil { $0[.acks] == 1 }

          let response = try await AdminClient.request("GET", "/status", at: admin)
          #expect(response.status == 200)
          let status = try NodeStatus.decoder.decode(NodeStatus.self, from: Data(response.body.utf8))
          #expect(status.isHealthy)
          let identity = try #require(status.identities.first)
          #expect(identity.identity == running.agent.identities.pinnedIdentity.description && identity.pinned)
          #expect(identity.phase == "serving" && identity.streams == 1)
          #expect(identity.serial == running.agent.cache.current.svid?.leaf.serialHex)
          #expect(status.trustBundle.count == 1)
          #expect(status.streams.map(\.nodeID) == ["envoy-status-test"])
          #expect(status.streams.first?.lastAckedVersion == first.versionInfo)
          #expect(!response.body.contains("PRIVATE KEY"))
          let text = status.text(now: Date())
          #expect(text.contains("serving") && text.contains("envoy-status-test") && text.hasSuffix("healthy\n"))
        }
      }
    }
  }

  @Test func anIdentityWithoutAValidCertificateMakesTheNodeUnhealthy() throws {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")
    let table = IdentityTable(
      pinned: identity, template: IdentitySettings(keyType: .ecdsaP256, ttl: .seconds(60)), idleTimeout: .seconds(60),
      now: Date())
    let status = NodeStatus(table: table, streams: StreamRegistry(), certificateAuthority: "the local CA", now: Date())
    #expect(!status.isHealthy)
    #expect(status.identities.map(\.phase) == ["issuing"])
    #expect(status.text(now: Date()).contains("UNHEALTHY"))
  }
}
