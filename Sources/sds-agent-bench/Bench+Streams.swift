import Foundation
import SDSAgent

extension Bench {
  /// The figures of one stream count: the agent's and the baseline's streams, and the fan-out.
  struct StreamsResult {
    let agent: StreamFigures
    let baseline: StreamFigures?
    /// The same streams on `HTTP2FloorServer`: swift-nio-http2's part alone.
    let floor: StreamFigures?
    let fanOut: [[String]]
  }

  /// Opens `count` streams on a fresh agent, reads its RSS once all have their first response,
  /// then forces `fanOuts` rotations one after the other and times each `default` stream's push
  /// (a fan-out row each). With `python`, opens the same streams the same way on a fresh
  /// baseline server, after the agent has stopped; with `http2Floor`, on the floor server too.
  func streamsAndFanOut(count: Int, perConnection: Int, fanOuts: Int = 1) async throws -> StreamsResult {
    let load = StreamLoad(
      count: count, perConnection: perConnection, client: self.streamClient, openRate: self.openRate)
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let responses =
      self.python == nil && !self.http2Floor
      ? nil : try await BaselineServer.copyResponses(from: agent.socketPath, into: directory)
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

    var floorFigures: StreamFigures?
    if self.http2Floor, let responses {
      let floor = try await HTTP2FloorServer.start(responses: responses, in: directory, children: self.children)
      floorFigures = try await Self.open(load, on: floor, named: "swift-nio-http2 floor")
      await floor.stop()
    }
    guard let python = self.python, let responses else {
      return StreamsResult(agent: agentFigures, baseline: nil, floor: floorFigures, fanOut: fanOut)
    }
    let baseline = try await BaselineServer.start(
      .asyncio, python: python, responses: responses, in: directory, children: self.children)
    let baselineFigures = try await Self.open(load, on: baseline, named: "grpcio (C-core)")
    await baseline.stop()
    return StreamsResult(agent: agentFigures, baseline: baselineFigures, floor: floorFigures, fanOut: fanOut)
  }

  /// Opens `load`'s streams on a server other than the agent and takes the same figures.
  private static func open(_ load: StreamLoad, on server: BaselineServer, named name: String) async throws
    -> StreamFigures
  {
    let before = server.residentKiB
    let cpuBefore = (server.child.processorTime, ProcessorTime.used())
    return try await load.withStreamsOpen(on: server.socketPath) { tracker, elapsed in
      let after = server.residentKiB
      let openingCPU = (server: server.child.processorTime - cpuBefore.0, client: ProcessorTime.used() - cpuBefore.1)
      Self.logErrors(of: tracker, on: name)
      return StreamFigures(
        server: name, load: load, answered: tracker.firstResponses, errors: tracker.errors,
        timeToFirstResponses: elapsed, residentKiBBefore: before, residentKiBAfter: after,
        firstResponseWaits: tracker.firstResponseWaits, openingCPU: openingCPU)
    }
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
