import Foundation
import SDSAgent

extension Bench {
  /// What a soak found: a row per rotation round, and what broke its bounds, if anything.
  struct SoakResult {
    let rows: [[String]]
    let violations: [String]
  }

  /// The growth a soak allows after its warm-up rounds (the bounds `Benchmarks/soak.sh` states).
  enum SoakBounds {
    static let warmUpRounds = 2
    static let residentGrowth = 0.20
    static let descriptorGrowth = 10
    static let threadGrowth = 4
  }

  static let soakHeader = [
    "round", "at", "default streams pushed", "p50", "p99", "max", "agent CPU in round", "RSS", "fds", "threads",
  ]

  /// Holds `count` streams open on one agent for `duration`, forcing a rotation every
  /// `rotateEvery`, and after each round samples the agent's RSS, descriptors and threads.
  /// A round that does not reach every open `default` stream, a stream that fails, or growth
  /// beyond `SoakBounds` after the warm-up is a violation.
  func soak(count: Int, perConnection: Int, duration: Duration, rotateEvery: Duration) async throws -> SoakResult {
    let load = StreamLoad(
      count: count, perConnection: perConnection, client: self.streamClient, openRate: self.openRate)
    let tracker = SoakTracker(streams: count, defaultStreams: load.defaultStreams) {
      ($0 % perConnection) % 2 == 0
    }
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let result = try await load.withStreamsOpen(on: agent.socketPath, following: tracker) { tracker, elapsed in
      guard elapsed != nil else {
        return SoakResult(rows: [], violations: ["not every stream had its first response within the limit"])
      }
      return try await Self.rounds(load, tracker: tracker, agent: agent, duration: duration, every: rotateEvery)
    }
    await agent.stop()
    return result
  }

  private static func rounds(
    _ load: StreamLoad, tracker: SoakTracker, agent: AgentProcess, duration: Duration, every period: Duration
  ) async throws -> SoakResult {
    let started = ContinuousClock.now
    var rows: [[String]] = []
    var samples: [AgentSample] = []
    var violations: [String] = []
    var next = started
    while next - started < duration {
      try await Task.sleep(until: next)
      let cpuBefore = agent.processorTime
      let done = tracker.startRound(at: .now)
      let rotation = try await AdminClient.request("POST", "/rotate", at: .unixSocket(path: agent.adminPath))
      guard rotation.status == 200 else { throw BenchError(.server, "POST /rotate answered \(rotation.status)") }
      let reached = await StreamTracker.wait(for: done, atMost: load.pushLimit)
      let (latencies, open) = tracker.round
      let sample = AgentSample(agent.child)
      samples.append(sample)
      let number = samples.count
      if !reached { violations.append("round \(number): \(latencies.count) of \(open) default streams pushed") }
      let sorted = latencies.sorted()
      rows.append([
        "\(number)", String(format: "%.0f s", (ContinuousClock.now - started).seconds),
        "\(latencies.count) of \(open)", Self.ms(Self.percentile(sorted, 0.5)), Self.ms(Self.percentile(sorted, 0.99)),
        Self.ms(sorted.last ?? .zero), Self.ms(agent.processorTime - cpuBefore),
        String(format: "%.1f MiB", Double(sample.residentKiB) / 1024), "\(sample.descriptors)", "\(sample.threads)",
      ])
      next += period
    }
    if tracker.errors > 0 {
      violations.append("\(tracker.errors) streams failed, the first: \(tracker.firstError ?? "?")")
    }
    violations += Self.growth(of: samples)
    return SoakResult(rows: rows, violations: violations)
  }

  /// Growth of the samples after the warm-up beyond `SoakBounds`, against the first sample after it.
  private static func growth(of samples: [AgentSample]) -> [String] {
    guard samples.count > SoakBounds.warmUpRounds else { return [] }
    let base = samples[SoakBounds.warmUpRounds - 1]
    let later = samples[SoakBounds.warmUpRounds...]
    var found: [String] = []
    let rss = later.map(\.residentKiB).max() ?? 0
    if Double(rss) > Double(base.residentKiB) * (1 + SoakBounds.residentGrowth) {
      found.append("RSS grew from \(base.residentKiB) KiB to \(rss) KiB")
    }
    let fds = later.map(\.descriptors).max() ?? 0
    if fds > base.descriptors + SoakBounds.descriptorGrowth {
      found.append("descriptors grew from \(base.descriptors) to \(fds)")
    }
    let threads = later.map(\.threads).max() ?? 0
    if threads > base.threads + SoakBounds.threadGrowth {
      found.append("threads grew from \(base.threads) to \(threads)")
    }
    return found
  }
}

/// An agent's resident memory, open descriptors and threads at one moment, from /proc.
struct AgentSample {
  let residentKiB: Int
  let descriptors: Int
  let threads: Int

  init(_ process: ChildProcess) {
    self.residentKiB = process.residentKiB
    self.descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/fd").count) ?? 0
    let status = (try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") } ?? ""
    self.threads = Int(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
  }
}
