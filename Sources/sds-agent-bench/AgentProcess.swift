import Foundation
import SDSAgent
import SDSAgentCore

/// An sds-agent child process on a temporary socket, with an admin endpoint.
final class AgentProcess {
  let child: ChildProcess
  let directory: String
  let socketPath: String
  let adminPath: String

  init(binary: String, directory: String, extraArguments: [String] = [], in children: ChildProcesses) throws {
    self.directory = directory
    self.socketPath = directory + "/sds.sock"
    self.adminPath = directory + "/admin.sock"
    let arguments =
      [
        "run", "--socket", self.socketPath, "--state-dir", directory + "/state", "--admin", "unix:" + self.adminPath,
        "--log-level", "error",
      ] + extraArguments
    self.child = try ChildProcess(binary, arguments, in: children)
  }

  var pid: Int32 { self.child.pid }
  var processorTime: Duration { self.child.processorTime }
  var processorTimes: (user: Duration, system: Duration) { self.child.processorTimes }

  /// Resident set size in KiB, from /proc.
  var residentKiB: Int { self.child.residentKiB }

  /// Waits until a FetchSecrets succeeds; returns how long that took since `started`.
  func waitUntilServing(since started: ContinuousClock.Instant, limit: Duration = .seconds(30)) async throws -> Duration
  {
    while ContinuousClock.now - started < limit {
      if (try? await SDSClient.fetch(socketPath: self.socketPath, names: ["default"])) != nil {
        return ContinuousClock.now - started
      }
      guard self.child.process.isRunning else {
        throw BenchError(
          .process, "the agent exited with status \(self.child.process.terminationStatus) before serving")
      }
      await Task.yield()
    }
    throw BenchError(.process, "the agent did not serve within \(limit)")
  }

  func stop() async {
    await self.child.stop()
  }

  /// A fresh directory under `$TMPDIR` (default /tmp), so a caller can tell this run's processes
  /// by their arguments.
  static func temporaryDirectory() throws -> String {
    let root = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    let path = root + "/sds-bench-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }
}

/// Why a benchmark could not run.
struct BenchError: AgentFailure {
  enum Code: String, Sendable {
    /// A process the benchmark starts did not start or serve.
    case process
    /// The server measured answered something other than expected.
    case server
  }

  let code: Code
  let message: String
  let cause: (any Error)?

  init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  var description: String { self.failureText }
}
