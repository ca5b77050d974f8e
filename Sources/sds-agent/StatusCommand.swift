import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract:
      "The node's view from a live agent's admin endpoint: identities, trust bundle, revocation lists, connected Envoys.",
    discussion:
      "Exits 0 when every identity has a valid certificate, 1 when one has not, 2 when the agent cannot be asked."
  )

  @Option(help: "The agent's admin endpoint: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN, or the config file).")
  var admin: String?

  @Option(help: "The agent's YAML config file, for its admin endpoint (also SDS_AGENT_CONFIG).")
  var config: String?

  @Flag(help: "Print the status as JSON (an object with an `identities` list) for scripts.")
  var json = false

  func run() async throws {
    let admin = try AdminEndpoint.find(admin: self.admin, config: self.config)
    let status: NodeStatus
    do {
      let response = try await AdminClient.request("GET", "/status", at: admin)
      guard response.status == 200 else {
        throw AgentError(
          .connection, "the admin endpoint answered \(response.status): \(BoundedText(response.body, limit: 512))")
      }
      // What is printed is what was decoded, escaped: never the endpoint's bytes as they came.
      status = try response.decode(NodeStatus.self, decoder: NodeStatus.decoder).escaped()
    } catch {
      let reason = BoundedText.escaped("\(error)")
      FileHandle.standardError.write(Data("sds-agent status: cannot read the agent's status: \(reason)\n".utf8))
      throw ExitCode(2)
    }
    if self.json {
      let data = (try? NodeStatus.encoder.encode(status)) ?? Data()
      print(String(decoding: data, as: UTF8.self))
    } else {
      print(status.text(now: Date()), terminator: "")
    }
    if !status.isHealthy { throw ExitCode(1) }
  }
}
