extension NodeStatus {
  /// The open Workload API calls, counted by method and identity; nothing when there are none.
  func workloadAPILines() -> [String] {
    let calls = self.streams.filter(\.isWorkloadAPI)
    guard !calls.isEmpty else { return [] }
    var counts: [[String]: Int] = [:]
    for call in calls {
      counts[[call.method ?? "-", call.identity ?? "-"], default: 0] += 1
    }
    let rows = counts.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { $0 + ["\(counts[$0]!)"] }
    return ["", "Workload API calls: \(calls.count) open"]
      + Self.table(header: ["METHOD", "IDENTITY", "OPEN"], rows: rows)
  }
}
