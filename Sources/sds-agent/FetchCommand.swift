import ArgumentParser
import Foundation
import SDSAgent

struct FetchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fetch",
    abstract: "Show what the agent serves: subject, SPIFFE ID, serial, validity and chain length of each secret."
  )

  @Option(help: "The agent's Unix socket (default: the same default as `run`, or SDS_AGENT_SOCKET).")
  var socket: String?

  @Option(name: .customLong("resource"), help: "A resource name to fetch (repeatable; default: default and ROOTCA).")
  var resources: [String] = []

  @Flag(help: "Print JSON instead of text.")
  var json = false

  @Flag(name: .customLong("show-key"), help: "Also print the workload's private key. Handle the output as a secret.")
  var showKey = false

  func run() async throws {
    let socket = EnvironmentOption.value(self.socket, name: "socket") ?? DefaultPaths.resolve().socketPath
    let names = self.resources.isEmpty ? ["default", "ROOTCA"] : self.resources
    let secrets: [SecretSummary]
    do {
      secrets = try await SDSClient.fetch(socketPath: socket, names: names)
    } catch {
      FileHandle.standardError.write(Data("sds-agent fetch: \(socket): \(error)\n".utf8))
      throw ExitCode(1)
    }
    if self.json {
      let objects = secrets.map { $0.jsonObject(includeKey: self.showKey) }
      let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    } else {
      print(secrets.map { $0.text(includeKey: self.showKey) }.joined(separator: "\n"))
    }
  }
}
