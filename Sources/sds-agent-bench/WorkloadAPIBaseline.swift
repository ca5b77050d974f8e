import EnvoySDSProtos
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The grpcio (gRPC C-core) peer of the Workload API, `Benchmarks/baseline_workload_api_server.py`,
/// on its own Unix socket: it answers `FetchX509SVID` with the agent's own first response, and
/// pushes it again on every open stream at SIGUSR1, so both servers send the same bytes.
struct WorkloadAPIBaseline {
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Benchmarks/baseline_workload_api_server.py").path

  let child: ChildProcess
  let socketPath: String

  /// Starts the server on `directory/baseline-workload.sock` with `response` (which holds the
  /// agent's SVID key: written 0600 and removed once the server has read it), and returns once a
  /// `FetchX509SVID` through it succeeded.
  static func start(
    python: String, response: SpiffeWorkload_X509SVIDResponse, in directory: String, children: ChildProcesses
  ) async throws -> WorkloadAPIBaseline {
    let file = directory + "/workload-response.bin"
    guard
      FileManager.default.createFile(
        atPath: file, contents: Data(try response.serializedBytes() as [UInt8]),
        attributes: [.posixPermissions: 0o600])
    else { throw BenchError(.process, "cannot write \(file)") }
    defer { try? FileManager.default.removeItem(atPath: file) }
    let socketPath = directory + "/baseline-workload.sock"
    let pipe = Pipe()
    let child = try ChildProcess(
      python, [Self.script, "--socket", socketPath, "--response", file], standardOutput: pipe, in: children)
    guard !pipe.fileHandleForReading.availableData.isEmpty else {
      await child.stop()
      throw BenchError(.process, "the baseline server \(Self.script) exited before serving")
    }
    do {
      let answer = try await WorkloadAPILoad.firstResponse(socketPath: socketPath)
      guard answer == response else { throw BenchError(.server, "the baseline answers other bytes than the agent") }
    } catch {
      await child.stop()
      throw BenchError(.server, "the baseline server does not answer FetchX509SVID", cause: error)
    }
    return WorkloadAPIBaseline(child: child, socketPath: socketPath)
  }

  var residentKiB: Int { self.child.residentKiB }
  var processorTime: Duration { self.child.processorTime }

  /// Every open stream gets the response again, as a rotation pushes it.
  func push() throws {
    guard kill(self.child.pid, SIGUSR1) == 0 else { throw BenchError(.process, "cannot signal the baseline server") }
  }

  func stop() async {
    await self.child.stop()
  }
}
