import Foundation
import SDSAgent

extension Bench {
  /// The figures of one stream count: the agent's and the baseline's streams, and the fan-out.
  struct StreamsResult {
    let agent: StreamFigures
    let baseline: StreamFigures?
    let fanOut: [[String]]
  }

  /// Opens `count` streams on a fresh agent, reads its RSS once all have their first response,
  /// then forces `fanOuts` rotations one after the other and times each `default` stream's push
  /// (a fan-out row each). With `python`, opens the same streams the same way on a fresh
  /// baseline server, after the agent has stopped.
  func streamsAndFanOut(count: Int, perConnection: Int, fanOuts: Int = 1) async throws -> StreamsResult {
    let load = StreamLoad(
      count: count, perConnection: perConnection, client: self.streamClient, openRate: self.openRate)
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let responses =
      self.python == nil ? nil : try await BaselineServer.copyResponses(from: agent.socketPath, into: directory)
    let before = agent.residentKiB
    let cpuBefore = (agent.processorTime, ProcessorTime.used())
    let (agentFigures, fanOut) = try await load.withStreamsOpen(on: agent.socketPath) { tracker, elapsed in
      let after = agent.residentKiB
      let openingCPU = (server: agent.processorTime - cpuBefore.0, client: ProcessorTime.used() - cpuBefore.1)
      var fanOut: [[String]] = []
      for _ in 0..<fanOuts { fanOut.append(try await Self.fanOut(load, tracker: tracker, agent: agent)) }
      Self.logErrors(of: tracker, on: "sds-agent")
      return (
        StreamFigures(
          server: "sds-agent", load: load, answered: tracker.firstResponses, errors: tracker.errors,
          timeToFirstResponses: elapsed, residentKiBBefore: before, residentKiBAfter: after,
          firstResponseWaits: tracker.firstResponseWaits, openingCPU: openingCPU),
        fanOut
      )
    }
    await agent.stop()

    guard let python = self.python, let responses else {
      return StreamsResult(agent: agentFigures, baseline: nil, fanOut: fanOut)
    }
    let baseline = try await BaselineServer.start(
      .asyncio, python: python, responses: responses, in: directory, children: self.children)
    let baselineBefore = baseline.residentKiB
    let baselineCPUBefore = (baseline.child.processorTime, ProcessorTime.used())
    let baselineFigures = try await load.withStreamsOpen(on: baseline.socketPath) { tracker, elapsed in
      let after = baseline.residentKiB
      let openingCPU = (
        server: baseline.child.processorTime - baselineCPUBefore.0, client: ProcessorTime.used() - baselineCPUBefore.1
      )
      Self.logErrors(of: tracker, on: "grpcio")
      return StreamFigures(
        server: "grpcio (C-core)", load: load, answered: tracker.firstResponses, errors: tracker.errors,
        timeToFirstResponses: elapsed, residentKiBBefore: baselineBefore, residentKiBAfter: after,
        firstResponseWaits: tracker.firstResponseWaits, openingCPU: openingCPU)
    }
    await baseline.stop()
    return StreamsResult(agent: agentFigures, baseline: baselineFigures, fanOut: fanOut)
  }

  static let fanOutHeader = [
    "streams", "default streams", "default streams timed", "p50", "p99", "max", "agent CPU", "of it in the kernel",
    "bench client CPU",
  ]

  /// Forces a rotation through the admin endpoint and times each `default` stream's push; with
  /// the CPU time the agent and the bench client spent meanwhile, to tell which one the fan-out
  /// waited for.
  private static func fanOut(_ load: StreamLoad, tracker: StreamTracker, agent: AgentProcess) async throws -> [String] {
    let (agentBefore, clientBefore) = (agent.processorTimes, ProcessorTime.used())
    tracker.startFanOut(at: ContinuousClock.now)
    let rotation = try await AdminClient.request("POST", "/rotate", at: .unixSocket(path: agent.adminPath))
    guard rotation.status == 200 else { throw BenchError(.server, "POST /rotate answered \(rotation.status)") }
    if !(await StreamTracker.wait(for: tracker.allPushed, atMost: load.pushLimit)) {
      FileHandle.standardError.write(
        Data("fan-out: not every default stream had its push within \(load.pushLimit)\n".utf8))
    }
    let agentAfter = agent.processorTimes
    let agentKernel = agentAfter.system - agentBefore.system
    let (agentCPU, clientCPU) = (agentAfter.user - agentBefore.user + agentKernel, ProcessorTime.used() - clientBefore)
    let latencies = tracker.pushLatencies.sorted()
    return [
      "\(load.count)", "\(load.defaultStreams)", "\(latencies.count)", Self.ms(Self.percentile(latencies, 0.5)),
      Self.ms(Self.percentile(latencies, 0.99)), Self.ms(latencies.last ?? .zero), Self.ms(agentCPU),
      Self.ms(agentKernel), Self.ms(clientCPU),
    ]
  }

  /// The tables count errors; the first one's text goes to standard error, to tell what it was.
  private static func logErrors(of tracker: StreamTracker, on server: String) {
    guard let error = tracker.firstError else { return }
    FileHandle.standardError.write(Data("\(server): \(tracker.errors) stream errors, the first: \(error)\n".utf8))
  }
}
