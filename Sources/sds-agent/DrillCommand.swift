import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct DrillCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drill",
    abstract: "Rotation drill against a live agent: force a rotation and check the push on open SDS streams."
  )

  @Option(help: "The agent's Unix socket (default: as for `run`, or SDS_AGENT_SOCKET).")
  var socket: String?

  @Option(help: "The agent's admin endpoint: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN).")
  var admin: String?

  @Option(help: "How long to wait for the new certificate on the open stream (default 10s).")
  var timeout = "10s"

  func run() async throws {
    let socket = EnvironmentOption.value(self.socket, name: "socket") ?? DefaultPaths.resolve().socketPath
    guard let adminText = EnvironmentOption.value(self.admin, name: "admin"),
      let admin = AgentConfiguration.AdminAddress(adminText)
    else {
      throw ValidationError(
        "--admin is required: the agent's admin endpoint, e.g. 127.0.0.1:15000 or unix:/run/sds-agent/admin.sock")
    }
    guard let timeout = DurationParser.parse(self.timeout) else {
      throw ValidationError("invalid timeout \"\(self.timeout)\": expected a duration such as 10s")
    }
    let report: RotationDrill.Report
    do {
      report = try await RotationDrill(socketPath: socket, admin: admin, timeout: timeout).run()
    } catch {
      FileHandle.standardError.write(Data("rotation drill: FAILED\n  \(error)\n".utf8))
      throw ExitCode(1)
    }
    print(report.text)
    if !report.passed { throw ExitCode(1) }
  }
}
