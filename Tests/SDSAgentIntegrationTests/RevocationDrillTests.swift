import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `sds-agent drill --revoke` against live agents: it passes against an agent with an embedded CA
/// (new serial, new key, the list naming the old serial, all on its open streams), and fails,
/// saying why, when the admin endpoint is another agent's or when no list arrives in time.
@Suite(.timeLimit(.minutes(1))) struct RevocationDrillTests {
  func configuration(
    admin: AgentConfiguration.AdminAddress, caSource: AgentConfiguration.CASource = .generated
  ) throws -> AgentConfiguration {
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    builder.caSource = caSource
    return try builder.build()
  }

  @Test func theDrillPassesAgainstALiveAgent() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    try await RunningAgent.with(try self.configuration(admin: admin)) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin).run()
      #expect(report.passed, "\(report.text)")
      let new = try #require(report.newSerial)
      #expect(new != report.oldSerial)
      #expect(report.answered != nil && report.certificateArrived != nil && report.listsArrived != nil)
      let old = try #require(CertificateSerial(hex: report.oldSerial))
      let lists = running.agent.identities.servedRevocationLists
      #expect(!lists.isEmpty && lists.allSatisfy { $0.revokes(old) })
      #expect(report.listNumbers == lists.map(\.number))
      #expect(report.text.hasPrefix("revocation drill: PASSED"))
      print(report.text)
    }
  }

  @Test func theDrillFailsWhenTheAdminEndpointIsAnotherAgents() async throws {
    let adminB = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    try await RunningAgent.with { a in
      try await RunningAgent.with(try self.configuration(admin: adminB)) { b in
        await b.agent.waitForAdminEndpoint()
        // Agent B never signed the certificate agent A serves on the drill's stream.
        let report = try await RevocationDrill(socketPath: a.socketPath, admin: adminB, timeout: .seconds(5)).run()
        #expect(!report.passed)
        #expect(report.failures.contains { $0.contains("POST /ca/revoke answered 404") }, "\(report.text)")
        #expect(a.agent.identities.servedRevocationLists.allSatisfy { $0.entries.isEmpty })
      }
    }
  }

  @Test func theDrillFailsWhenNoListArrivesInTime() async throws {
    // An operator CA signing through an intermediate: revocations are recorded and the holder is
    // re-issued, but no list is served (Envoy's SPIFFE validator would need the root's list of
    // the intermediate).
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("certs-testdata").path
    let directory = TemporaryDirectory.make()
    let key = try String(contentsOfFile: fixtures + "/intermediate-key.pem", encoding: .utf8)
    try key.write(toFile: directory + "/intermediate-key.pem", atomically: false, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/intermediate-key.pem")
    let source = AgentConfiguration.CASource.files(
      certificate: fixtures + "/intermediate.pem", key: directory + "/intermediate-key.pem",
      chain: fixtures + "/root.pem")
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: directory + "/admin.sock")
    try await RunningAgent.with(try self.configuration(admin: admin, caSource: source)) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin, timeout: .seconds(1)).run()
      #expect(!report.passed)
      #expect(report.answered != nil && report.certificateArrived != nil && report.listsArrived == nil)
      #expect(report.failures.count == 1, "\(report.text)")
      #expect(report.failures.first?.contains("no ROOTCA whose revocation lists name") == true, "\(report.text)")
    }
  }
}
