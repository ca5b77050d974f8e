import Foundation
import Prometheus
import SDSAgentCore
import Synchronization

/// The agent's metrics in a Prometheus registry (swift-prometheus), rendered by `/metrics`.
/// Counters arrive through `AgentMetricsRecorder`; gauges are set at scrape time.
public final class PrometheusMetrics: AgentMetricsRecorder {
  let registry = PrometheusCollectorRegistry()
  private let issuance: DurationHistogram
  private let issuanceFailures: DurationHistogram
  private let streamsOpen: Gauge
  private let counters = Mutex([String: Counter]())

  public init() {
    let buckets: [Duration] = [
      .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]
    let issuance = Self.descriptor(
      "certificate_issuance", unit: "seconds", help: "Time to obtain a workload certificate from the CA")
    self.issuance = self.registry.makeDurationHistogram(
      descriptor: issuance, labels: [("result", "success")], buckets: buckets)
    self.issuanceFailures = self.registry.makeDurationHistogram(
      descriptor: issuance, labels: [("result", "failure")], buckets: buckets)
    self.streamsOpen = self.registry.makeGauge(
      descriptor: Self.descriptor("streams_open", unit: "", help: "SDS streams open now"))
    // Unlabelled counters exist from the start, so a scrape shows 0 rather than nothing.
    for name in AgentCounters.Name.allCases where name != .nacks && name != .issuanceFailures && name != .callersRefused
    {
      self.increment(name, by: 0, labels: [])
    }
  }

  static func descriptor(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(namespace: "sds_agent", metricName: name, unitName: unit, helpText: help)
  }

  public func increment(_ name: AgentCounters.Name, by amount: Int, labels: [(String, String)]) {
    let key = name.rawValue + labels.map { "|\($0.0)=\($0.1)" }.joined()
    let counter = self.counters.withLock { counters in
      if let counter = counters[key] { return counter }
      let counter = self.registry.makeCounter(
        descriptor: Self.descriptor(
          name.rawValue, unit: "total", help: "Count of \(name.rawValue.replacingOccurrences(of: "_", with: " "))"),
        labels: labels
      )
      counters[key] = counter
      return counter
    }
    counter.increment(by: Int64(amount))
  }

  public func recordIssuance(duration: Duration, succeeded: Bool) {
    (succeeded ? self.issuance : self.issuanceFailures).record(duration)
  }

  /// The text exposition, with the gauges brought up to date.
  public func render(openStreams: Int, identities: [IdentitySnapshot], now: Date) -> String {
    self.streamsOpen.set(Double(openStreams))
    for svid in identities.compactMap(\.served.svid) {
      self.registry.makeGauge(
        descriptor: Self.descriptor(
          "certificate_expiry", unit: "seconds", help: "Seconds until the served certificate expires"),
        labels: [("identity", svid.identity.description)]
      ).set(svid.notAfter.timeIntervalSince(now))
    }
    var buffer: [UInt8] = []
    self.registry.emit(into: &buffer)
    return String(decoding: buffer, as: UTF8.self)
  }
}
