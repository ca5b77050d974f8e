import ArgumentParser
import Foundation
import SDSAgentCore

@main
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sds-agent-bench",
    abstract: "Benchmarks a running sds-agent over its real Unix socket and prints a Markdown report.",
    discussion: "Timings are reported, never asserted. Use a release build of the agent for published numbers."
  )

  @Option(help: "The sds-agent binary to benchmark.")
  var agent: String

  @Option(help: "Stream counts to open, comma-separated.")
  var streams = "1000,10000"

  @Option(help: "Streams per HTTP/2 connection.")
  var streamsPerConnection = 500

  @Option(help: "Concurrency levels for the FetchSecrets throughput run, comma-separated.")
  var fetchConcurrency = "1,8,32"

  @Option(help: "Seconds per throughput and issuance measurement.")
  var seconds = 3.0

  @Option(help: "Python with grpcio and xds-protos, for the C-core baseline server (skipped if absent).")
  var python: String?

  @Option(help: "How many times to start the agent for the startup figure.")
  var startups = 5

  @Option(
    help:
      "Which measurements to run, comma-separated: startup, streams, issuance, fetch, workload-api, ca-signing, revocation (the default), ca-burst and soak."
  )
  var phases = "startup,streams,issuance,fetch," + Self.apiPhases.joined(separator: ",")

  @Option(help: "Simulated agents renewing at once against two ca serve replicas (ca-burst).")
  var caAgents = 500

  @Option(help: "Runs of the ca-burst storm with admission control off and on.")
  var caRuns = 3

  @Option(help: "Minutes the soak holds its streams open (soak).")
  var soakMinutes = 10.0

  @Option(help: "Seconds between the soak's forced rotations (soak).")
  var rotateEvery = 30.0

  @Option(help: "Workload API FetchX509SVID stream counts to open (workload-api), comma-separated.")
  var workloadStreams = "1000,10000"

  @Option(help: "Revocations timed until Envoy refuses the certificate (revocation).")
  var revocationRuns = 5

  @Option(help: "Rotations forced one after the other on each stream count's open streams (a fan-out row each).")
  var fanOuts = 1

  @Option(help: "The client of the SDS streams phases (streams, soak): lean (raw HTTP/2 frames) or grpc-swift.")
  var streamClient = StreamLoad.Client.lean

  @Option(help: "Streams opened per second across all connections (lean client); all at once if absent.")
  var openRate: Double?

  @Flag(help: "A small, quick run (N=200, short measurements) so the tool cannot rot; numbers are not meaningful.")
  var smoke = false

  @Flag(
    inversion: .prefixedNo,
    help:
      "Also open each stream count's streams on a server that does only swift-nio-http2's part (streams): the floor the agent's transport stands on."
  )
  var http2Floor = true

  /// The bench binary also serves as the HTTP/2 floor server (`HTTP2FloorServer`), in its own process.
  static func main() async {
    let arguments = Array(CommandLine.arguments.dropFirst())
    guard arguments.first == HTTP2FloorServer.serveFlag else { return await Self.main(arguments) }
    do {
      try await HTTP2FloorServer.serve(arguments: Array(arguments.dropFirst()))
    } catch {
      FileHandle.standardError.write(Data("\(error)\n".utf8))
      Foundation.exit(1)
    }
  }

  func run() async throws {
    let children = ChildProcesses()
    let signalSources = children.stopAllOnSignals()
    defer { signalSources.forEach { $0.cancel() } }
    do {
      try await self.measure(children: children)
    } catch {
      await children.stopAll()
      throw error
    }
    await children.stopAll()
  }

  private func measure(children: ChildProcesses) async throws {
    let streamCounts = self.smoke ? [200] : self.streams.split(separator: ",").compactMap { Int($0) }
    let concurrency = self.smoke ? [1, 8] : self.fetchConcurrency.split(separator: ",").compactMap { Int($0) }
    let seconds = self.smoke ? 0.5 : self.seconds
    if let rate = self.openRate, rate <= 0 || self.streamClient != .lean {
      throw ValidationError("--open-rate takes a positive rate and paces the lean stream client only")
    }
    let bench = Bench(
      agentBinary: self.agent, python: self.python, measureSeconds: seconds, children: children,
      streamClient: self.streamClient, openRate: self.openRate, http2Floor: self.http2Floor)
    let openFileLimit = OpenFileLimit.raiseToHardLimit()
    var report = Report()
    report.section("Machine", Bench.machineDescription() + ", open-file limit \(openFileLimit)")
    var phases = Set(self.phases.split(separator: ",").map(String.init))
    // The smoke run also holds its streams for one soak round, so that phase cannot rot either.
    if self.smoke { phases.insert("soak") }
    let known = ["startup", "streams", "issuance", "fetch", "ca-burst", "soak"] + Self.apiPhases
    if let unknown = phases.subtracting(known).first {
      throw ValidationError("unknown phase \(unknown): expected one of " + known.joined(separator: ", "))
    }

    if phases.contains("startup") {
      report.table(
        "Startup (exec to first successful FetchSecrets, warm state directory)",
        ["runs", "min", "median", "max"],
        [try await bench.startup(runs: self.smoke ? 2 : self.startups)]
      )
    }
    if phases.contains("streams") {
      var streamRows: [[String]] = []
      var memoryRows: [[String]] = []
      var fanOutRows: [[String]] = []
      for count in streamCounts {
        let result = try await bench.streamsAndFanOut(
          count: count, perConnection: self.streamsPerConnection, fanOuts: self.fanOuts)
        streamRows.append(result.agent.row)
        if let floor = result.floor { streamRows.append(floor.row) }
        if let baseline = result.baseline { streamRows.append(baseline.row) }
        memoryRows.append(StreamFigures.comparisonRow(agent: result.agent, baseline: result.baseline))
        fanOutRows.append(contentsOf: result.fanOut)
      }
      report.table(
        "Streams (each subscribed to default or ROOTCA; RSS from /proc once all have their first response; "
          + "\(self.streamClient.rawValue) client\(self.openRate.map { String(format: ", opened at %.0f/s", $0) } ?? ""))",
        StreamFigures.header,
        streamRows
      )
      report.table(
        "Memory per open stream, sds-agent next to grpcio (C-core), same client and streams",
        StreamFigures.comparisonHeader,
        memoryRows
      )
      report.table(
        "Fan-out (forced rotation to the last default stream holding the new certificate; "
          + "\(self.streamClient.rawValue) client)",
        Bench.fanOutHeader,
        fanOutRows
      )
    }
    if phases.contains("issuance") {
      report.table(
        "Issuance by the embedded CA (fresh key + signed leaf) next to the raw crypto",
        [
          "key type", "certs/s", "mean latency", "raw keygen + CA sign", "ratio",
          "openssl speed sign/s (same primitive)",
        ],
        // RSA key generation in a debug build takes seconds: the smoke run keeps to ECDSA.
        try await bench.issuance(keyTypes: self.smoke ? [.ecdsaP256] : WorkloadKeyType.allCases)
      )
    }
    if phases.contains("fetch") {
      report.table(
        "FetchSecrets throughput (cached, over the Unix socket; bench client CPU in % of one core)",
        Bench.fetchHeader,
        try await bench.fetchThroughput(concurrency: concurrency)
      )
      report.table(
        "FetchSecrets throughput with a lean client (raw HTTP/2 frames, no task per call; both servers, same client)",
        Bench.fetchHeader,
        try await bench.fetchThroughput(concurrency: concurrency, client: .lean)
      )
    }
    if phases.contains("ca-burst") {
      report.table(
        "A renewal storm: simulated agents at once against two ca serve replicas of one CA",
        Bench.caBurstHeader,
        try await bench.caBurst(agents: self.smoke ? 50 : self.caAgents, runs: self.smoke ? 1 : self.caRuns)
      )
    }
    try await self.measureAPIs(bench, phases: phases, report: &report)
    var soakViolations: [String] = []
    if phases.contains("soak") {
      let soak = try await bench.soak(
        count: streamCounts.max() ?? 1000, perConnection: self.streamsPerConnection,
        duration: .seconds(self.smoke ? 2 : self.soakMinutes * 60), rotateEvery: .seconds(self.rotateEvery))
      report.table(
        "Soak: streams held open, a forced rotation every \(self.rotateEvery) s", Bench.soakHeader, soak.rows)
      let verdict = soak.violations.isEmpty ? "within bounds" : soak.violations.joined(separator: "; ")
      report.section("Soak verdict", verdict)
      soakViolations = soak.violations
    }
    print(report.markdown)
    if !soakViolations.isEmpty { throw ExitCode.failure }
  }
}

extension StreamLoad.Client: ExpressibleByArgument {}

struct Report {
  private(set) var markdown = ""

  mutating func section(_ title: String, _ body: String) {
    self.markdown += "### \(title)\n\n\(body)\n\n"
  }

  mutating func table(_ title: String, _ header: [String], _ rows: [[String]]) {
    var text =
      "### \(title)\n\n| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in " --- |" }.joined() + "\n"
    for row in rows {
      text += "| " + row.joined(separator: " | ") + " |\n"
    }
    self.markdown += text + "\n"
    FileHandle.standardError.write(Data("done: \(title)\n".utf8))
  }
}
