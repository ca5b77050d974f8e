import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct CARotateRootCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rotate-root",
    abstract:
      "Start a staged rotation of the embedded CA root of a running agent or `ca serve`: prepare, switch, retire.",
    discussion: """
      The new root joins the trust bundle at once; after the overlap, and once every open stream \
      holding the bundle acknowledged it, the new root signs and every identity is re-issued; one \
      certificate lifetime later the old root leaves the bundle. Follow it with GET /debug/trust. \
      Against `ca serve` (its --admin address), there are no streams to wait for: the new root signs \
      after the overlap, which must be at least its --max-ttl, and its TLS certificate is re-issued.
      """
  )

  @Option(
    help:
      "The admin endpoint of the agent or `ca serve`: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN, or the config file)."
  )
  var admin: String?

  @Option(help: "The agent's YAML config file, for its admin endpoint (also SDS_AGENT_CONFIG).")
  var config: String?

  @Option(help: "How long both roots are trusted before the switch, for this rotation only (default: --root-overlap).")
  var overlap: String?

  func run() async throws {
    let admin = try AdminEndpoint.find(admin: self.admin, config: self.config)
    var path = "/ca/rotate-root"
    if let overlap {
      guard DurationParser.parse(overlap, in: .seconds(1) ... .seconds(365 * 86400)) != nil else {
        throw ValidationError("invalid --overlap \"\(BoundedText(overlap))\": expected a duration from 1s to 365d")
      }
      path += "?overlap=\(overlap)"
    }
    let response = try await AdminClient.request("POST", path, at: admin)
    guard response.status == 202 else {
      FileHandle.standardError.write(Data(response.printableBody.utf8))
      throw ExitCode(1)
    }
    print(response.printableBody, terminator: "")
  }
}
