/// The phases that measure each API added since the SDS figures beside its peer (issue #27):
/// the SPIFFE Workload API, `ca serve`'s signing, and revocation reaching Envoy.
extension BenchCommand {
  static let apiPhases = ["workload-api", "ca-signing", "revocation"]

  func measureAPIs(_ bench: Bench, phases: Set<String>, report: inout Report) async throws {
    if phases.contains("workload-api") {
      try await self.measureWorkloadAPI(bench, report: &report)
    }
    if phases.contains("ca-signing") {
      report.table(
        "`ca serve` signings next to the raw crypto (CreateCertificate over gRPC/TLS; CPU in % of one core)",
        Bench.caSigningHeader,
        try await bench.caSigning(concurrency: [1, 8], withDatastore: true)
      )
    }
    if phases.contains("revocation") {
      report.table(
        "Revocation propagation: `ca revoke` to Envoy 1.40 refusing the revoked certificate",
        Bench.revocationHeader,
        try await bench.revocation(runs: self.smoke ? 1 : self.revocationRuns)
      )
    }
  }

  private func measureWorkloadAPI(_ bench: Bench, report: inout Report) async throws {
    let counts = self.smoke ? [200] : self.workloadStreams.split(separator: ",").compactMap { Int($0) }
    var streams: [[String]] = []
    var memory: [[String]] = []
    var fanOut: [[String]] = []
    for count in counts {
      let result = try await bench.workloadAPIStreams(count: count, perConnection: self.streamsPerConnection)
      streams += result.streams
      memory.append(result.memory)
      fanOut += result.fanOut
    }
    report.table(
      "Workload API FetchX509SVID streams (RSS from /proc once all have their first response)",
      StreamFigures.header, streams)
    report.table(
      "Memory per open FetchX509SVID stream, sds-agent next to grpcio (C-core), same client and streams",
      StreamFigures.comparisonHeader, memory)
    report.table(
      "Workload API fan-out (a forced rotation, or the baseline's push, to every stream)",
      Bench.workloadAPIFanOutHeader, fanOut)
    report.table(
      "FetchJWTSVID next to the raw ES256 signature (CPU in % of one core)",
      Bench.jwtSVIDHeader, try await bench.jwtSVIDRate(concurrency: [1, 8]))
  }
}
