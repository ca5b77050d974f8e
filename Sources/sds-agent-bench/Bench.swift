// The phases live in Bench+Phase.swift files; this one holds what they share.
import EnvoySDSProtos
import Foundation
import GRPCNIOTransportHTTP2
import SDSAgentCore

/// The measurements. Every figure comes from the real agent process over its Unix socket,
/// except issuance, which times the embedded CA's own code in-process next to the raw crypto.
/// Where `python` is given, the streams and FetchSecrets figures are measured the same way
/// against a grpcio (gRPC C-core) server answering the agent's own response bytes.
struct Bench {
  typealias SDS = Envoy_Service_Secret_V3_SecretDiscoveryService.Client<HTTP2ClientTransport.Posix>

  let agentBinary: String
  let python: String?
  let measureSeconds: Double
  let children: ChildProcesses
  /// The client and the pace of the SDS streams phases (streams, soak).
  var streamClient = StreamLoad.Client.lean
  var openRate: Double?
  /// Whether the streams phase also opens its streams on the HTTP/2 floor server.
  var http2Floor = false

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
