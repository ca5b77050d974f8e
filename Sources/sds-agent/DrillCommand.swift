import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct DrillCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drill",
    abstract: "Rotation drill against a live agent: force a rotation and check the push on open SDS streams."
  )

  @Option(help: "The agent's Unix socket (default: as for `run`: SDS_AGENT_SOCKET, the config file, the default path).")
  var socket: String?

  @Option(help: "The agent's admin endpoint: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN, or the config file).")
  var admin: String?

  @Option(help: "The agent's YAML config file, for its socket and admin endpoint (also SDS_AGENT_CONFIG).")
  var config: String?

  @Option(help: "How long to wait for the new certificate on the open stream (default 10s).")
  var timeout = "10s"

  func run() async throws {
    var flags: [String: [String]] = [:]
    flags[AgentSettings.socket.key] = self.socket.map { [$0] }
    flags[AgentSettings.admin.key] = self.admin.map { [$0] }
    let endpoints: (socketPath: String, admin: AgentConfiguration.AdminAddress?)
    do {
      endpoints = try ConfigurationLoader(flags: flags, configFile: self.config).agentEndpoints()
    } catch {
      throw ValidationError(error.description)
    }
    let socket = endpoints.socketPath
    guard let admin = endpoints.admin else {
      throw ValidationError(
        "--admin is required: the agent's admin endpoint, e.g. 127.0.0.1:15000 or unix:/run/sds-agent/admin.sock")
    }
    guard let timeout = DurationParser.parse(self.timeout, in: .milliseconds(1) ... .seconds(86400)) else {
      throw ValidationError(
        "invalid timeout \"\(BoundedText(self.timeout))\": expected a duration from 1ms to 1d, such as 10s")
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
