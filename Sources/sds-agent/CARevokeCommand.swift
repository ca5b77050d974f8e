import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct CARevokeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "revoke",
    abstract:
      "Revoke certificates the embedded CA of a running agent or `ca serve` signed: by serial, or all of an identity.",
    discussion: """
      The agent records the revocation in its state directory, re-issues the holder with a new key, \
      and pushes its revocation list to every Envoy in each validation context of its trust domain; \
      Envoy refuses the revoked certificate on new handshakes (established connections stay open). \
      GET /ca/crl on the admin endpoint shows the list. Against `ca serve` (its --admin address), \
      the list is recorded and answered on GET /ca/crl; agents that fetch from it do not follow it yet.
      """
  )

  @Option(help: "The serial number in hex, as `openssl x509 -serial` prints it.")
  var serial: String?

  @Option(help: "A SPIFFE ID: every unexpired certificate of it is revoked.")
  var identity: String?

  @Option(help: "Why: \(RevocationReason.allCases.map(\.rawValue).joined(separator: ", ")).")
  var reason: String = RevocationReason.unspecified.rawValue

  @Option(
    help:
      "The admin endpoint of the agent or `ca serve`: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN, or the config file)."
  )
  var admin: String?

  @Option(help: "The agent's YAML config file, for its admin endpoint (also SDS_AGENT_CONFIG).")
  var config: String?

  func validate() throws {
    guard (self.serial == nil) != (self.identity == nil) else {
      throw ValidationError("name exactly one of --serial and --identity")
    }
  }

  func run() async throws {
    let admin = try AdminEndpoint.find(admin: self.admin, config: self.config)
    var document: [String: String] = ["reason": self.reason]
    document["serial"] = self.serial
    document["identity"] = self.identity
    let body = try JSONEncoder().encode(document)
    let response = try await AdminClient.request("POST", "/ca/revoke", at: admin, body: Array(body))
    guard response.status == 200 else {
      FileHandle.standardError.write(Data(response.printableBody.utf8))
      throw ExitCode(1)
    }
    print(response.printableBody, terminator: "")
  }
}
