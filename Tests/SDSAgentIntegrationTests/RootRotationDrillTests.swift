import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `RootRotationDrill` against an agent in this process, over its real socket and admin socket:
/// it follows a rotation to the end from the pushes on its own streams, and refuses to drill
/// while a rotation already runs. The rotation takes real time (a 1 s overlap, then one 4 s
/// lifetime until the retirement).
@Suite(.timeLimit(.minutes(1))) struct RootRotationDrillTests {
  func withAgent(_ body: (String, AgentConfiguration.AdminAddress) async throws -> Void) async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder()
    builder.admin = admin
    builder.certificateTTL = .seconds(4)
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      try await body(running.socketPath, admin)
    }
  }

  @Test func theDrillFollowsARotationToTheEndFromItsOwnStreams() async throws {
    try await self.withAgent { socket, admin in
      let report = try await RootRotationDrill(socketPath: socket, admin: admin, overlap: .seconds(1)).run()
      print(report.text)
      #expect(report.passed, "\(report.failures)")
      #expect(report.phases.map(\.0) == ["prepared", "switched", "idle"])
      #expect(report.oldRoot != report.newRoot)
      #expect(report.pushes.contains { $0.0.hasSuffix("chains to \(report.newRoot)") })
      #expect(report.pushes.last?.0 == "ROOTCA roots=[\"\(report.newRoot)\"]")
      let trust = try await AdminClient.request("GET", "/debug/trust", at: admin).decode(AdminAPI.Trust.self)
      #expect(trust.phase.rawValue == "idle")
    }
  }

  @Test func aDrillWhileARotationRunsFailsAndSaysWhy() async throws {
    try await self.withAgent { socket, admin in
      let started = try await AdminClient.request("POST", "/ca/rotate-root?overlap=1h", at: admin)
      #expect(started.status == 202)
      let report = try await RootRotationDrill(socketPath: socket, admin: admin).run()
      #expect(!report.passed)
      #expect(report.failures.contains { $0.contains("2 roots before the drill") }, "\(report.failures)")
    }
  }
}
