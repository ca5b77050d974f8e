import EnvoySDSProtos
import Foundation
import SDSAgent
import SDSAgentCore

/// A peer server in its own process on its own Unix socket, answering with the agent's own
/// response bytes for `default` or `ROOTCA`, so both servers send the same bytes: the grpcio
/// (gRPC C-core) baseline, `Benchmarks/baseline_sds_server.py`, which answers FetchSecrets and
/// each stream's first request, or the HTTP/2 floor (`HTTP2FloorServer`), streams only.
struct BaselineServer {
  /// Which grpcio server the script runs.
  enum Kind: String {
    /// grpc.aio: FetchSecrets and StreamSecrets, open streams without a thread each.
    case asyncio = "aio"
    /// grpc.server with a thread pool: FetchSecrets only, and faster at it than grpc.aio here.
    case threadPool = "sync"
  }

  static let resourceNames = [SecretResource.tlsCertificate.name, SecretResource.validationContext.name]
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Benchmarks/baseline_sds_server.py").path

  let child: ChildProcess
  let socketPath: String

  /// Writes the agent's FetchSecrets answer for each of `resourceNames` into `directory`; returns
  /// the script's `--response NAME=FILE` arguments.
  static func copyResponses(from agentSocketPath: String, into directory: String) async throws -> [String] {
    try await SDSClient.withConnection(socketPath: agentSocketPath) { client in
      var arguments: [String] = []
      for name in Self.resourceNames {
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.resourceNames = [name]
        request.typeURL = SecretResource.typeURL
        let response = try await client.fetchSecrets(request)
        let file = directory + "/response-\(name).bin"
        try Data(try response.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        arguments += ["--response", "\(name)=\(file)"]
      }
      return arguments
    }
  }

  /// Starts the server on `directory/baseline.sock` and returns once a FetchSecrets through it
  /// succeeded, as the agent is started for its figures.
  static func start(
    _ kind: Kind, python: String, responses: [String], in directory: String, children: ChildProcesses
  ) async throws -> BaselineServer {
    let socketPath = directory + "/baseline.sock"
    let pipe = Pipe()
    let child = try ChildProcess(
      python, [Self.script, "--server", kind.rawValue, "--socket", socketPath] + responses, standardOutput: pipe,
      in: children)
    // The script prints one line once it serves (or closes its output when it fails).
    guard !pipe.fileHandleForReading.availableData.isEmpty else {
      await child.stop()
      throw BenchError(.process, "the baseline server \(Self.script) exited before serving")
    }
    let server = BaselineServer(child: child, socketPath: socketPath)
    do {
      _ = try await SDSClient.fetch(socketPath: socketPath, names: [SecretResource.tlsCertificate.name])
    } catch {
      await child.stop()
      throw BenchError(.server, "the baseline server does not answer FetchSecrets", cause: error)
    }
    return server
  }

  var residentKiB: Int { self.child.residentKiB }

  func stop() async {
    await self.child.stop()
  }
}
