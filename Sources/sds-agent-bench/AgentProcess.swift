import Foundation
import SDSAgent

/// An sds-agent child process on a temporary socket, with an admin endpoint.
final class AgentProcess {
  let process = Process()
  let directory: String
  let socketPath: String
  let adminPath: String

  init(binary: String, directory: String, extraArguments: [String] = []) throws {
    self.directory = directory
    self.socketPath = directory + "/sds.sock"
    self.adminPath = directory + "/admin.sock"
    self.process.executableURL = URL(fileURLWithPath: binary)
    self.process.arguments =
      [
        "run", "--socket", self.socketPath, "--state-dir", directory + "/state", "--admin", "unix:" + self.adminPath,
        "--log-level", "error",
      ] + extraArguments
    self.process.standardOutput = FileHandle.nullDevice
    try self.process.run()
  }

  var pid: Int32 { self.process.processIdentifier }

  /// Resident set size in KiB, from /proc.
  var residentKiB: Int {
    let status = (try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
  }

  /// Waits until a FetchSecrets succeeds; returns how long that took since `started`.
  func waitUntilServing(since started: ContinuousClock.Instant, limit: Duration = .seconds(30)) async throws -> Duration
  {
    while ContinuousClock.now - started < limit {
      if (try? await SDSClient.fetch(socketPath: self.socketPath, names: ["default"])) != nil {
        return ContinuousClock.now - started
      }
      await Task.yield()
    }
    throw BenchError("the agent did not serve within \(limit)")
  }

  func stop() {
    self.process.terminate()
    self.process.waitUntilExit()
  }

  static func temporaryDirectory() throws -> String {
    let path = "/tmp/sds-bench-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }
}

struct BenchError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
