// One file for all phases: they share the agent process, its socket client and the figures they
// print, and each phase is a short function of its own.
import Crypto
import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgent
import SDSAgentCore
import Synchronization
import X509

/// The measurements. Every figure comes from the real agent process over its Unix socket,
/// except issuance, which times the embedded CA's own code in-process next to the raw crypto.
struct Bench {
  typealias SDS = Envoy_Service_Secret_V3_SecretDiscoveryService.Client<HTTP2ClientTransport.Posix>

  let agentBinary: String
  let python: String?
  let measureSeconds: Double
  let children: ChildProcesses

  static func machineDescription() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model =
      cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?
      .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
    return "\(cores) cores (\(model)), \(memory) GiB, \(ProcessInfo.processInfo.operatingSystemVersionString)"
  }

  // MARK: Startup

  func startup(runs: Int) async throws -> [String] {
    let directory = try AgentProcess.temporaryDirectory()
    // A first run creates the CA; the timed runs start warm, as a restarted agent does.
    let first = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await first.waitUntilServing(since: .now)
    await first.stop()
    var times: [Duration] = []
    for _ in 0..<runs {
      let started = ContinuousClock.now
      let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
      times.append(try await agent.waitUntilServing(since: started))
      await agent.stop()
    }
    times.sort()
    return ["\(runs)", Self.ms(times.first!), Self.ms(times[times.count / 2]), Self.ms(times.last!)]
  }

  // MARK: Streams and fan-out

  func streamsAndFanOut(count: Int, perConnection: Int) async throws -> (streams: [String], fanOut: [String]) {
    let agent = try AgentProcess(
      binary: self.agentBinary, directory: try AgentProcess.temporaryDirectory(), in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let before = agent.residentKiB
    let connections = (count + perConnection - 1) / perConnection
    let sizes = (0..<connections).map { min(perConnection, count - $0 * perConnection) }
    let defaults = sizes.map { ($0 + 1) / 2 }.reduce(0, +)
    let tracker = StreamTracker(streams: count, defaultStreams: defaults)

    let socketPath = agent.socketPath
    let adminPath = agent.adminPath
    let result = try await withThrowingTaskGroup(of: Void.self) { group in
      let started = ContinuousClock.now
      for size in sizes {
        group.addTask { try await Self.openStreams(size, socketPath: socketPath, tracker: tracker) }
      }
      await tracker.allFirstResponses.wait()
      let firstResponses = ContinuousClock.now - started
      let after = agent.residentKiB

      tracker.startFanOut(at: ContinuousClock.now)
      let rotation = try await AdminClient.request("POST", "/rotate", at: .unixSocket(path: adminPath))
      guard rotation.status == 200 else { throw BenchError("POST /rotate answered \(rotation.status)") }
      await tracker.allPushed.wait()
      let latencies = tracker.pushLatencies.sorted()
      tracker.finish.reach()
      group.cancelAll()

      let perStream = count > 0 ? Double(after - before) / Double(count) : 0
      return (
        [
          "\(count)", "\(connections)", Self.ms(firstResponses), "\(before / 1024) MiB", "\(after / 1024) MiB",
          String(format: "%.1f KiB", perStream),
        ],
        [
          "\(defaults)", Self.ms(Self.percentile(latencies, 0.5)), Self.ms(Self.percentile(latencies, 0.99)),
          Self.ms(latencies.last ?? .zero),
        ]
      )
    }
    await agent.stop()
    return result
  }

  private static func openStreams(_ count: Int, socketPath: String, tracker: StreamTracker) async throws {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
    try await withGRPCClient(transport: transport) { client in
      let sds = SDS(wrapping: client)
      try await withThrowingDiscardingTaskGroup { streams in
        for index in 0..<count {
          let name = index % 2 == 0 ? SecretResource.tlsCertificate.name : SecretResource.validationContext.name
          streams.addTask {
            var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
            request.resourceNames = [name]
            request.typeURL = SecretResource.typeURL
            request.node.id = "bench"
            try await sds.streamSecrets(
              request: StreamingClientRequest { [request] writer in
                try await writer.write(request)
                await tracker.finish.wait()
              }
            ) { response in
              var received = 0
              for try await _ in response.messages {
                received += 1
                if received == 1 {
                  tracker.firstResponse()
                } else if name == SecretResource.tlsCertificate.name {
                  tracker.pushed(at: ContinuousClock.now)
                }
              }
            }
          }
        }
      }
    }
  }

  // MARK: Issuance

  func issuance(keyTypes: [WorkloadKeyType] = WorkloadKeyType.allCases) async throws -> [[String]] {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/bench/sa/bench")
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let ca = LocalCA(material: material)
    let caKey = P256.Signing.PrivateKey()
    // A leaf's to-be-signed part is about this long.
    let tbs = [UInt8](repeating: 0x5A, count: 420)
    var rows: [[String]] = []
    for keyType in keyTypes {
      let (_, issuedTime) = try self.repeatFor(self.measureSeconds) {
        _ = try ca.certify(identity: identity, privateKey: try keyType.generate(), ttl: .seconds(3600), now: Date())
      }
      let (_, rawTime) = try self.repeatFor(self.measureSeconds) {
        _ = try keyType.generate()
        _ = try caKey.signature(for: tbs)
      }
      let perIssue = issuedTime
      let perRaw = rawTime
      let openssl = Self.opensslSignRate(keyType == .ecdsaP256 ? "ecdsap256" : "rsa2048")
      rows.append([
        keyType.rawValue, String(format: "%.0f", 1 / perIssue.seconds), Self.ms(perIssue),
        Self.ms(perRaw), String(format: "%.2f×", perIssue.seconds / perRaw.seconds), openssl,
      ])
    }
    return rows
  }

  /// Runs `body` repeatedly for about `seconds`; returns the count and the mean time per run.
  private func repeatFor(_ seconds: Double, _ body: () throws -> Void) throws -> (Int, Duration) {
    let started = ContinuousClock.now
    var count = 0
    while (ContinuousClock.now - started).seconds < seconds || count < 3 {
      try body()
      count += 1
    }
    let elapsed = ContinuousClock.now - started
    return (count, elapsed / count)
  }

  static func opensslSignRate(_ algorithm: String) -> String {
    let process = Process()
    // `openssl speed` times itself with SIGALRM, which the concurrency pool's threads block and
    // a spawned child inherits blocked: unblock it before exec, or the run never ends.
    process.executableURL = URL(fileURLWithPath: "/usr/bin/perl")
    process.arguments = [
      "-MPOSIX", "-e", "sigprocmask(SIG_UNBLOCK, POSIX::SigSet->new(SIGALRM)); exec @ARGV or die",
      "openssl", "speed", "-seconds", "1", algorithm,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return "openssl not found" }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // The last line holds the figures: "... sign verify sign/s verify/s" (ecdsa) or
    // "rsa 2048 bits 0.000xs 0.0000xs sign/s verify/s" (rsa).
    guard
      let line = output.split(separator: "\n").last(where: {
        $0.contains(algorithm == "rsa2048" ? "rsa 2048" : "256 bits")
      })
    else { return "?" }
    let numbers = line.split(separator: " ").compactMap { Double($0) }
    guard numbers.count >= 2 else { return "?" }
    return String(format: "%.0f", numbers[numbers.count - 2])
  }

  // MARK: FetchSecrets throughput

  func fetchThroughput(concurrency levels: [Int]) async throws -> [[String]] {
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let baseline = try await self.startBaseline(copying: agent.socketPath, in: directory)
    var rows: [[String]] = []
    for level in levels {
      let agentRate = try await self.fetchRate(socketPath: agent.socketPath, concurrency: level)
      if baseline != nil {
        let baselineRate = try await self.fetchRate(socketPath: directory + "/baseline.sock", concurrency: level)
        rows.append([
          "\(level)", String(format: "%.0f", agentRate), String(format: "%.0f", baselineRate),
          String(format: "%.2f×", agentRate / baselineRate),
        ])
      } else {
        rows.append(["\(level)", String(format: "%.0f", agentRate), "(no --python)", "-"])
      }
    }
    await baseline?.stop()
    await agent.stop()
    return rows
  }

  private func fetchRate(socketPath: String, concurrency: Int) async throws -> Double {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in
      let sds = SDS(wrapping: client)
      var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
      request.resourceNames = [SecretResource.tlsCertificate.name]
      request.typeURL = SecretResource.typeURL
      _ = try await sds.fetchSecrets(request)
      let started = ContinuousClock.now
      let seconds = self.measureSeconds
      let calls = try await withThrowingTaskGroup(of: Int.self) { group in
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
      return Double(calls) / (ContinuousClock.now - started).seconds
    }
  }

  /// The grpcio baseline answers FetchSecrets with the agent's own response bytes.
  private func startBaseline(copying socketPath: String, in directory: String) async throws -> ChildProcess? {
    guard let python = self.python else { return nil }
    let response = try await SDSClient.withConnection(socketPath: socketPath) { client in
      var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
      request.resourceNames = [SecretResource.tlsCertificate.name]
      request.typeURL = SecretResource.typeURL
      return try await client.fetchSecrets(request)
    }
    let responseFile = directory + "/response.bin"
    try Data(try response.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: responseFile))
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Benchmarks/baseline_sds_server.py").path
    let pipe = Pipe()
    let baseline = try ChildProcess(
      python, [script, "--socket", directory + "/baseline.sock", "--response", responseFile], standardOutput: pipe,
      in: self.children)
    // The script prints one line once it serves (or closes its output when it fails).
    guard !pipe.fileHandleForReading.availableData.isEmpty else {
      await baseline.stop()
      throw BenchError("the baseline server \(script) exited before serving")
    }
    return baseline
  }

  // MARK: Formatting

  static func ms(_ duration: Duration) -> String {
    let milliseconds = duration.seconds * 1000
    return milliseconds < 10 ? String(format: "%.2f ms", milliseconds) : String(format: "%.0f ms", milliseconds)
  }

  static func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
    guard !sorted.isEmpty else { return .zero }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
  }
}

/// Counts first responses and rotation pushes across every stream, without blocking any.
final class StreamTracker: Sendable {
  private struct State {
    var firstResponses = 0
    var fanOutStart: ContinuousClock.Instant?
    var pushLatencies: [Duration] = []
  }

  let streams: Int
  let defaultStreams: Int
  let allFirstResponses = Milestone()
  let allPushed = Milestone()
  let finish = Milestone()
  private let state = Mutex(State())

  init(streams: Int, defaultStreams: Int) {
    self.streams = streams
    self.defaultStreams = defaultStreams
  }

  func firstResponse() {
    let done = self.state.withLock { state -> Bool in
      state.firstResponses += 1
      return state.firstResponses == self.streams
    }
    if done { self.allFirstResponses.reach() }
  }

  func startFanOut(at instant: ContinuousClock.Instant) {
    self.state.withLock { $0.fanOutStart = instant }
  }

  func pushed(at instant: ContinuousClock.Instant) {
    let done = self.state.withLock { state -> Bool in
      guard let start = state.fanOutStart else { return false }
      state.pushLatencies.append(instant - start)
      return state.pushLatencies.count == self.defaultStreams
    }
    if done { self.allPushed.reach() }
  }

  var pushLatencies: [Duration] { self.state.withLock { $0.pushLatencies } }
}
