import Foundation

/// What one server did with one `StreamLoad`: how many streams got their first response, how many
/// failed, and its resident memory before the streams opened and once all had their first response.
struct StreamFigures {
  let server: String
  let load: StreamLoad
  let answered: Int
  let errors: Int
  let timeToFirstResponses: Duration?
  let residentKiBBefore: Int
  let residentKiBAfter: Int
  /// Each stream's wait from its request to its first response, where the load timed it.
  var firstResponseWaits: [Duration] = []
  /// CPU time the server and the bench client spent from the first stream's opening until all
  /// were answered, where the phase measured it.
  var openingCPU: (server: Duration, client: Duration)?

  var perStreamKiB: Double {
    self.load.count > 0 ? Double(self.residentKiBAfter - self.residentKiBBefore) / Double(self.load.count) : 0
  }

  static let header = [
    "server", "streams", "connections", "first responses", "errors", "time to all first responses",
    "each stream's request to first response: p50 / p99 / max", "server CPU / bench client CPU until then",
    "RSS before", "RSS after", "per stream",
  ]

  var row: [String] {
    [
      self.server, "\(self.load.count)", "\(self.load.connections)", "\(self.answered)", "\(self.errors)",
      self.timeToFirstResponses.map(Bench.ms) ?? "over \(Bench.ms(self.load.firstResponseLimit))",
      self.waits, self.openingCPU.map { "\(Bench.ms($0.server)) / \(Bench.ms($0.client))" } ?? "-",
      "\(self.residentKiBBefore / 1024) MiB", "\(self.residentKiBAfter / 1024) MiB",
      String(format: "%.1f KiB", self.perStreamKiB),
    ]
  }

  private var waits: String {
    let sorted = self.firstResponseWaits.sorted()
    guard let slowest = sorted.last else { return "-" }
    return [0.5, 0.99].map { Bench.ms(Bench.percentile(sorted, $0)) }.joined(separator: " / ")
      + " / \(Bench.ms(slowest))"
  }

  static let comparisonHeader = [
    "streams", "connections", "agent per-stream KiB", "grpcio per-stream KiB", "ratio (agent / grpcio)",
  ]

  /// The agent's per-stream memory next to the baseline's, for the same load.
  static func comparisonRow(agent: StreamFigures, baseline: StreamFigures?) -> [String] {
    let start = ["\(agent.load.count)", "\(agent.load.connections)", String(format: "%.1f", agent.perStreamKiB)]
    guard let baseline else { return start + ["(no --python)", "-"] }
    return start + [
      String(format: "%.1f", baseline.perStreamKiB),
      String(format: "%.2f×", agent.perStreamKiB / baseline.perStreamKiB),
    ]
  }
}
