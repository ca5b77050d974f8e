import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The revocation lists served, as the admin endpoint shows them on its real socket: each list
/// in `/debug/trust` and `/status` (issuer, the root that signed it, number, entries, validity),
/// and `sds_agent_crl_entries` per trust domain in `/metrics`, before and after a revocation.
@Suite(.timeLimit(.minutes(1))) struct RevocationObservabilityTests {
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

  /// Revokes the agent's own certificate; its serial.
  func revokeOwn(_ running: RunningAgent, at admin: AgentConfiguration.AdminAddress) async throws -> CertificateSerial {
    let serial = CertificateSerial(try #require(running.agent.cache.current.svid).leaf.serialNumber)
    let body = #"{"serial": "\#(serial)", "reason": "superseded"}"#
    let response = try await AdminClient.request("POST", "/ca/revoke", at: admin, body: Array(body.utf8))
    #expect(response.status == 200, "\(response.body)")
    return serial
  }

  /// The value of the metric line `series`, if the exposition has it.
  func value(of series: String, in metrics: String) -> Double? {
    metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap {
      Double($0.dropFirst(series.count + 1))
    }
  }

  func trust(at admin: AgentConfiguration.AdminAddress) async throws -> AdminAPI.Trust {
    try await AdminClient.request("GET", "/debug/trust", at: admin).decode(AdminAPI.Trust.self)
  }

  @Test func debugTrustShowsEachListServedWithItsIssuerNumberAndEntries() async throws {
    try await self.withAgent { running, admin in
      let root = try #require(running.agent.identities.installedTrustBundle?.roots.first)
      let raw = try await AdminClient.request("GET", "/debug/trust", at: admin)
      for key in ["revocation_lists", "issuer_root", "this_update", "next_update"] {
        #expect(raw.body.contains("\"\(key)\""), "\(raw.body)")
      }
      let before = try #require(try raw.decode(AdminAPI.Trust.self).revocationLists?.first)
      let served = try #require(running.agent.identities.servedRevocationLists.first)
      #expect(before.issuer == "\(root.subject)" && before.issuerRoot == root.serialHex)
      #expect(before.number == served.number && before.entries == 0)
      #expect(before.nextUpdate.timeIntervalSince(before.thisUpdate) == 4 * 3600)

      _ = try await self.revokeOwn(running, at: admin)

      let after = try await self.trust(at: admin).revocationLists ?? []
      #expect(after.count == 1)
      #expect(after.first?.entries == 1 && (after.first?.number ?? 0) > before.number)
    }
  }

  @Test func metricsCountTheCertificatesRevokedInTheOwnTrustDomain() async throws {
    try await self.withAgent { running, admin in
      let gauge = #"sds_agent_crl_entries{trust_domain="cluster.local"}"#
      let before = try await AdminClient.request("GET", "/metrics", at: admin).body
      #expect(self.value(of: gauge, in: before) == 0, "\(before)")
      _ = try await self.revokeOwn(running, at: admin)
      let after = try await AdminClient.request("GET", "/metrics", at: admin).body
      #expect(self.value(of: gauge, in: after) == 1, "\(after)")
    }
  }

  @Test func statusShowsTheListsServed() async throws {
    try await self.withAgent { running, admin in
      _ = try await self.revokeOwn(running, at: admin)
      let response = try await AdminClient.request("GET", "/status", at: admin)
      let status = try NodeStatus.decoder.decode(NodeStatus.self, from: Data(response.body.utf8))
      let root = try #require(running.agent.identities.installedTrustBundle?.roots.first)
      let list = try #require(status.revocationLists.first)
      #expect(status.revocationLists.count == 1)
      #expect(list.issuerRoot == root.serialHex && list.entries == 1 && list.nextUpdate > Date())
      #expect(response.body.contains("\"next_update\""))
      let text = status.text(now: Date())
      #expect(text.contains("revocation lists: 1") && text.contains("number \(list.number), 1 revoked"), "\(text)")
    }
  }

  @Test func withoutListsTheStatusSaysNoneTheGaugeLeavesAndDebugTrustOmitsThem() throws {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")
    let table = IdentityTable(
      pinned: identity, template: IdentitySettings(keyType: .ecdsaP256, ttl: .seconds(60)), idleTimeout: .seconds(60),
      now: Date())
    let status = NodeStatus(table: table, streams: StreamRegistry(), certificateAuthority: "the local CA", now: Date())
    #expect(status.revocationLists.isEmpty)
    #expect(status.text(now: Date()).contains("revocation lists: none served"))

    let metrics = PrometheusMetrics()
    let served = metrics.render(
      counters: AgentCounters(), identities: [], revocationListEntries: ["cluster.local": 2], now: Date())
    #expect(self.value(of: #"sds_agent_crl_entries{trust_domain="cluster.local"}"#, in: served) == 2, "\(served)")
    let gone = metrics.render(counters: AgentCounters(), identities: [], now: Date())
    #expect(!gone.contains("sds_agent_crl_entries{"), "\(gone)")

    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let routes = TrustRoutes(
      rotation: nil, ca: EmbeddedCA(EmbeddedCA.Roots(signing: root)), trustDomain: "cluster.local",
      notRotatable: "operator CA files")
    let document = String(decoding: try AdminAPI.encoder.encode(routes.describe()), as: UTF8.self)
    #expect(routes.describe().revocationLists == nil && !document.contains("revocation_lists"), "\(document)")
  }
}
