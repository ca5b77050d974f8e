import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgentCore

extension Bench {
  /// Calls/s over one connection, and what the client itself spent doing them: its CPU time
  /// (getrusage, every thread) over the measured interval, in cores. The client and the server
  /// share the machine, so a client near a whole core per concurrent caller, or near the core
  /// count, is what limits the figure rather than the server.
  struct FetchRate {
    let callsPerSecond: Double
    let clientCores: Double
    /// The server process's CPU time per call over the same interval (user + system, from
    /// /proc: 10 ms ticks, so only a run of thousands of calls resolves it).
    var serverPerCall: Duration = .zero

    var calls: String { String(format: "%.0f", self.callsPerSecond) }
    var clientCPU: String { String(format: "%.0f%%", self.clientCores * 100) }
    var serverCPU: String { String(format: "%.1f µs", self.serverPerCall.seconds * 1e6) }
  }

  static let fetchHeader = [
    "concurrency", "sds-agent calls/s", "client CPU, agent run", "agent CPU per call",
    "grpcio (C-core) baseline calls/s", "client CPU, grpcio run", "grpcio CPU per call",
    "ratio (calls/s)", "ratio (server CPU per call)",
  ]

  /// The client a fetch table is measured with: grpc-swift's, or raw HTTP/2 frames with no task
  /// per call (`LeanFetchClient`), so that the servers' own costs decide the ratio.
  enum FetchClient: Sendable {
    case grpcSwift
    case lean
  }

  func fetchThroughput(concurrency levels: [Int], client: FetchClient = .grpcSwift) async throws -> [[String]] {
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    var baseline: BaselineServer?
    if let python = self.python {
      let responses = try await BaselineServer.copyResponses(from: agent.socketPath, into: directory)
      baseline = try await BaselineServer.start(
        .threadPool, python: python, responses: responses, in: directory, children: self.children)
    }
    var rows: [[String]] = []
    for level in levels {
      let agentRate = try await self.fetchRate(
        socketPath: agent.socketPath, concurrency: level, server: agent.child, client: client)
      if let baseline {
        let baselineRate = try await self.fetchRate(
          socketPath: baseline.socketPath, concurrency: level, server: baseline.child, client: client)
        rows.append([
          "\(level)", agentRate.calls, agentRate.clientCPU, agentRate.serverCPU, baselineRate.calls,
          baselineRate.clientCPU, baselineRate.serverCPU,
          String(format: "%.2f×", agentRate.callsPerSecond / baselineRate.callsPerSecond),
          String(format: "%.2f×", baselineRate.serverPerCall / agentRate.serverPerCall),
        ])
      } else {
        rows.append([
          "\(level)", agentRate.calls, agentRate.clientCPU, agentRate.serverCPU, "(no --python)", "-", "-", "-", "-",
        ])
      }
    }
    await baseline?.stop()
    await agent.stop()
    return rows
  }

  private func fetchRate(
    socketPath: String, concurrency: Int, server: ChildProcess, client kind: FetchClient
  ) async throws -> FetchRate {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in
      let sds = SDS(wrapping: client)
      var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
      request.resourceNames = [SecretResource.tlsCertificate.name]
      request.typeURL = SecretResource.typeURL
      _ = try await sds.fetchSecrets(request)
      let cpuBefore = ProcessorTime.used()
      let serverBefore = server.processorTime
      let started = ContinuousClock.now
      let seconds = self.measureSeconds
      let calls: Int
      switch kind {
      case .grpcSwift:
        calls = try await withThrowingTaskGroup(of: Int.self) { group in
          for _ in 0..<concurrency {
            group.addTask { [request] in
              var count = 0
              while (ContinuousClock.now - started).seconds < seconds {
                _ = try await sds.fetchSecrets(request)
                count += 1
              }
              return count
            }
          }
          return try await group.reduce(0, +)
        }
      case .lean:
        let service = Envoy_Service_Secret_V3_SecretDiscoveryService.descriptor.fullyQualifiedService
        let outcome = try await LeanFetchClient.run(
          socketPath: socketPath, path: "/\(service)/FetchSecrets", message: try request.serializedBytes(),
          concurrency: concurrency, seconds: seconds)
        guard outcome.failures == 0 else { throw LeanFetchClient.CallsFailed(failures: outcome.failures) }
        calls = outcome.calls
      }
      let elapsed = (ContinuousClock.now - started).seconds
      let cpu = (ProcessorTime.used() - cpuBefore).seconds
      let serverCPU = server.processorTime - serverBefore
      return FetchRate(
        callsPerSecond: Double(calls) / elapsed, clientCores: cpu / elapsed,
        serverPerCall: serverCPU / max(calls, 1))
    }
  }
}
