import ArgumentParser
import Foundation
import SDSAgent
import SDSAgentCore

struct DrillCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drill",
    abstract: "Rotation drill against a live agent: force a rotation and check the push on open SDS streams.",
    discussion: """
      With --root, a root drill: start a staged rotation of the agent's embedded CA root and follow it \
      to the end (prepare, switch, retire: one certificate lifetime after the switch), printing each \
      phase's time and the pushes seen on the drill's own streams.

      With --revoke, a revocation drill: revoke the certificate the drill's own stream holds through the \
      agent's embedded CA and check, within --timeout, that a new certificate with a new key replaces it \
      and that ROOTCA's revocation lists name the revoked serial; prints the times.
      """
  )

  @Option(help: "The agent's Unix socket (default: as for `run`: SDS_AGENT_SOCKET, the config file, the default path).")
  var socket: String?

  @Option(help: "The agent's admin endpoint: 127.0.0.1:PORT or unix:/path (or SDS_AGENT_ADMIN, or the config file).")
  var admin: String?

  @Option(help: "The agent's YAML config file, for its socket and admin endpoint (also SDS_AGENT_CONFIG).")
  var config: String?

  @Option(
    help: "How long to wait for the new certificate (and, with --revoke, the lists) on the open streams (default 10s).")
  var timeout = "10s"

  @Flag(help: "Drill a staged root rotation of the agent's embedded CA instead of a certificate rotation.")
  var root = false

  @Option(help: "With --root: how long both roots are trusted before the switch, for this rotation only.")
  var overlap: String?

  @Flag(help: "Drill a revocation: revoke the drill's own certificate and check the new one and the lists arrive.")
  var revoke = false

  func run() async throws {
    let endpoints = try AdminEndpoint.endpoints(socket: self.socket, admin: self.admin, config: self.config)
    let (socket, admin) = (endpoints.socketPath, endpoints.admin)
    guard let timeout = DurationParser.parse(self.timeout, in: .milliseconds(1) ... .seconds(86400)) else {
      throw ValidationError(
        "invalid timeout \"\(BoundedText(self.timeout))\": expected a duration from 1ms to 1d, such as 10s")
    }
    var overlap: Duration?
    if let text = self.overlap {
      guard self.root, let parsed = DurationParser.parse(text, in: .seconds(1) ... .seconds(365 * 86400)) else {
        throw ValidationError(
          "invalid --overlap \"\(BoundedText(text))\": expected a duration from 1s to 365d, and --root")
      }
      overlap = parsed
    }
    if self.root && self.revoke {
      throw ValidationError("--root and --revoke are two different drills: choose one")
    }
    let text: String
    let passed: Bool
    do {
      if self.revoke {
        let report = try await RevocationDrill(socketPath: socket, admin: admin, timeout: timeout).run()
        (text, passed) = (report.text, report.passed)
      } else if self.root {
        let report = try await RootRotationDrill(socketPath: socket, admin: admin, overlap: overlap).run()
        (text, passed) = (report.text, report.passed)
      } else {
        let report = try await RotationDrill(socketPath: socket, admin: admin, timeout: timeout).run()
        (text, passed) = (report.text, report.passed)
      }
    } catch {
      let drill = self.revoke ? "revocation" : self.root ? "root" : "rotation"
      FileHandle.standardError.write(Data("\(drill) drill: FAILED\n  \(error)\n".utf8))
      throw ExitCode(1)
    }
    print(text)
    if !passed { throw ExitCode(1) }
  }
}
