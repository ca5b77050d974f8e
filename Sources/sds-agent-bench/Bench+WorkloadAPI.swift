import Crypto
import EnvoySDSProtos
import Foundation
import GRPCCore
import SDSAgent

/// The SPIFFE Workload API next to its peers: `FetchX509SVID` streams (time to all first
/// responses, memory per stream, the fan-out of a rotation) next to grpcio serving the agent's
/// own response bytes with the same client; `FetchJWTSVID` calls/s next to the raw ES256
/// signature of the same token in-process.
extension Bench {
  struct WorkloadAPIStreamsResult {
    var streams: [[String]] = []
    var memory: [String]
    var fanOut: [[String]] = []
  }

  /// The agent's pushes start once it has a new certificate (a new key, signed) and the
  /// baseline's at the signal; the spread from the first push to the 99th percentile compares
  /// the fan-out itself.
  static let workloadAPIFanOutHeader = [
    "server", "streams", "pushes timed", "first push", "p50", "p99", "max", "p99 − first push", "server CPU",
    "bench client CPU", "spread ratio (agent / grpcio)",
  ]

  func workloadAPIStreams(count: Int, perConnection: Int) async throws -> WorkloadAPIStreamsResult {
    let load = WorkloadAPILoad(count: count, perConnection: perConnection)
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let response = try await WorkloadAPILoad.firstResponse(socketPath: agent.socketPath)
    let before = agent.residentKiB
    let (agentFigures, agentFanOut) = try await load.withStreamsOpen(on: agent.socketPath) { tracker, elapsed in
      let after = agent.residentKiB
      let fanOut = try await Self.workloadAPIFanOut(load, tracker: tracker, server: agent.child) {
        let rotation = try await AdminClient.request("POST", "/rotate", at: .unixSocket(path: agent.adminPath))
        guard rotation.status == 200 else { throw BenchError(.server, "POST /rotate answered \(rotation.status)") }
      }
      Self.logWorkloadAPIErrors(of: tracker, on: "sds-agent")
      return (
        StreamFigures(
          server: "sds-agent", load: load.shape, answered: tracker.firstResponses, errors: tracker.errors,
          timeToFirstResponses: elapsed, residentKiBBefore: before, residentKiBAfter: after),
        fanOut
      )
    }
    await agent.stop()

    guard let python = self.python else {
      return WorkloadAPIStreamsResult(
        streams: [agentFigures.row], memory: StreamFigures.comparisonRow(agent: agentFigures, baseline: nil),
        fanOut: [["sds-agent"] + agentFanOut.cells + ["(no --python)"]])
    }
    let baseline = try await WorkloadAPIBaseline.start(
      python: python, response: response, in: directory, children: self.children)
    let baselineBefore = baseline.residentKiB
    let (baselineFigures, baselineFanOut) = try await load.withStreamsOpen(on: baseline.socketPath) {
      tracker, elapsed in
      let after = baseline.residentKiB
      let fanOut = try await Self.workloadAPIFanOut(load, tracker: tracker, server: baseline.child) {
        try baseline.push()
      }
      Self.logWorkloadAPIErrors(of: tracker, on: "grpcio")
      return (
        StreamFigures(
          server: "grpcio (C-core)", load: load.shape, answered: tracker.firstResponses, errors: tracker.errors,
          timeToFirstResponses: elapsed, residentKiBBefore: baselineBefore, residentKiBAfter: after),
        fanOut
      )
    }
    await baseline.stop()
    return WorkloadAPIStreamsResult(
      streams: [agentFigures.row, baselineFigures.row],
      memory: StreamFigures.comparisonRow(agent: agentFigures, baseline: baselineFigures),
      fanOut: [
        ["sds-agent"] + agentFanOut.cells
          + [CallRate.ratio(agentFanOut.spread.seconds, to: baselineFanOut.spread.seconds)],
        ["grpcio (C-core)"] + baselineFanOut.cells + ["-"],
      ])
  }

  struct FanOut {
    let streams: Int
    let latencies: [Duration]
    let serverCPU: Duration
    let clientCPU: Duration

    var p99: Duration { Bench.percentile(self.latencies, 0.99) }
    var spread: Duration { self.p99 - (self.latencies.first ?? .zero) }

    var cells: [String] {
      [
        "\(self.streams)", "\(self.latencies.count)", Bench.ms(self.latencies.first ?? .zero),
        Bench.ms(Bench.percentile(self.latencies, 0.5)), Bench.ms(self.p99), Bench.ms(self.latencies.last ?? .zero),
        Bench.ms(self.spread), Bench.ms(self.serverCPU), Bench.ms(self.clientCPU),
      ]
    }
  }

  /// Starts a push on every stream with `trigger` and times each stream's, with the CPU time the
  /// server and the bench client spent meanwhile.
  private static func workloadAPIFanOut(
    _ load: WorkloadAPILoad, tracker: StreamTracker, server: ChildProcess, trigger: () async throws -> Void
  ) async throws -> FanOut {
    let (serverBefore, clientBefore) = (server.processorTime, ProcessorTime.used())
    tracker.startFanOut(at: ContinuousClock.now)
    try await trigger()
    if !(await StreamTracker.wait(for: tracker.allPushed, atMost: load.pushLimit)) {
      FileHandle.standardError.write(Data("workload-api fan-out: not every stream had its push\n".utf8))
    }
    return FanOut(
      streams: load.count, latencies: tracker.pushLatencies.sorted(),
      serverCPU: server.processorTime - serverBefore, clientCPU: ProcessorTime.used() - clientBefore)
  }

  private static func logWorkloadAPIErrors(of tracker: StreamTracker, on server: String) {
    guard let error = tracker.firstError else { return }
    FileHandle.standardError.write(
      Data("workload-api on \(server): \(tracker.errors) stream errors, the first: \(error)\n".utf8))
  }
}
