import Crypto
import EnvoySDSProtos
import Foundation
import GRPCCore

/// `FetchJWTSVID` over the agent's socket: a new audience on every call, so that every call
/// signs, and one audience, so that every call is answered from the agent's kept token; next to
/// the raw ES256 signature of the same signing input with swift-crypto in this process, per
/// second of one thread's CPU time. The agent's figure per core is its calls per second of its
/// own CPU time.
extension Bench {
  static let jwtSVIDHeader = [
    "calls", "concurrency", "sds-agent tokens/s", "agent CPU", "per agent core-second", "bench client CPU",
    "raw ES256 signs per core-second", "ratio (per agent core / raw)",
  ]

  func jwtSVIDRate(concurrency levels: [Int]) async throws -> [[String]] {
    let directory = try AgentProcess.temporaryDirectory()
    let agent = try AgentProcess(binary: self.agentBinary, directory: directory, in: self.children)
    _ = try await agent.waitUntilServing(since: .now)
    let rows = try await WorkloadAPILoad.withClient(socketPath: agent.socketPath) { client in
      let token = try await Self.jwtSVID(client, audience: "bench")
      let raw = Self.rawES256Rate(signingInputOf: token, seconds: self.measureSeconds)
      var rows: [[String]] = []
      for (name, signs) in [("signing (a new audience each)", true), ("cached (one audience)", false)] {
        for level in levels {
          let rate = try await CallRate.measure(
            concurrency: level, seconds: self.measureSeconds, server: agent.child
          ) { task, index in
            _ = try await Self.jwtSVID(client, audience: signs ? "bench-\(task)-\(index)" : "bench")
          }
          rows.append([
            name, "\(level)", rate.rate, rate.serverShare, rate.perCore, rate.clientShare,
            String(format: "%.0f", raw), CallRate.ratio(rate.perServerCoreSecond, to: raw),
          ])
        }
      }
      return rows
    }
    await agent.stop()
    return rows
  }

  private static func jwtSVID(_ client: WorkloadAPILoad.Client, audience: String) async throws -> String {
    var request = SpiffeWorkload_JWTSVIDRequest()
    request.audience = [audience]
    let response = try await client.fetchJWTSVID(
      request: ClientRequest(message: request, metadata: WorkloadAPILoad.header))
    guard let token = response.svids.first?.svid else { throw BenchError(.server, "FetchJWTSVID answered no token") }
    return token
  }

  /// ES256 signatures per second of `token`'s signing input (its header and claims), per second of CPU time on one thread.
  static func rawES256Rate(signingInputOf token: String, seconds: Double) -> Double {
    let signingInput = Data(token.split(separator: ".").prefix(2).joined(separator: ".").utf8)
    let key = P256.Signing.PrivateKey()
    return CallRate.inProcess(seconds: seconds) {
      _ = try? key.signature(for: signingInput)
    }
  }
}
