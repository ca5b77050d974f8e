import ArgumentParser
import Foundation
import SDSAgent

struct FetchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fetch",
    abstract: "Show what the agent serves: subject, SPIFFE ID, serial, validity and chain length of each secret."
  )

  @Option(help: "The agent's Unix socket (default: as for `run`: SDS_AGENT_SOCKET, the config file, the default path).")
  var socket: String?

  @Option(help: "The agent's YAML config file, for its socket (also SDS_AGENT_CONFIG).")
  var config: String?

  @Option(name: .customLong("resource"), help: "A resource name to fetch (repeatable; default: default and ROOTCA).")
  var resources: [String] = []

  @Flag(help: "Print JSON instead of text.")
  var json = false

  @Flag(name: .customLong("show-key"), help: "Also print the workload's private key. Handle the output as a secret.")
  var showKey = false

  func run() async throws {
    let socket: String
    do {
      socket = try ConfigurationLoader(
        flags: [AgentSettings.socket.key: self.socket.map { [$0] } ?? []], configFile: self.config
      )
      .agentEndpoints().socketPath
    } catch {
      throw ValidationError(error.description)
    }
    let names = self.resources.isEmpty ? ["default", "ROOTCA"] : self.resources
    let secrets: [SecretSummary]
    do {
      secrets = try await SDSClient.fetch(socketPath: socket, names: names)
    } catch {
      FileHandle.standardError.write(Data("sds-agent fetch: \(socket): \(error)\n".utf8))
      throw ExitCode(1)
    }
    if self.json {
      let data = try AdminAPI.encoder.encode(secrets.map { $0.document(includeKey: self.showKey) })
      print(String(decoding: data, as: UTF8.self))
    } else {
      print(secrets.map { $0.text(includeKey: self.showKey) }.joined(separator: "\n"))
    }
  }
}
