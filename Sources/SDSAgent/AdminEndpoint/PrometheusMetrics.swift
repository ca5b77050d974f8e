import Foundation
import Prometheus
import SDSAgentCore
import Synchronization

/// The agent's metrics as Prometheus text (swift-prometheus): the counts of `AgentCounters`,
/// copied into the registry at scrape time, the issuance histogram, and gauges set at scrape time.
package final class PrometheusMetrics: IssuanceRecorder {
  let registry = PrometheusCollectorRegistry()
  private let issuance: DurationHistogram
  private let issuanceFailures: DurationHistogram
  private let streamsOpen: Gauge
  /// The gauges of things that come and go: each identity's expiry, each trust domain's roots
  /// and revoked certificates.
  private struct LabelledGauges {
    var expiry: [String: Gauge] = [:]
    var roots: [String: Gauge] = [:]
    var crlEntries: [String: Gauge] = [:]
  }

  /// Serializes scrapes, which set the registry's counters from the counts.
  private let scrape = Mutex(LabelledGauges())

  package init() {
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
  }

  static func descriptor(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(namespace: "sds_agent", metricName: name, unitName: unit, helpText: help)
  }

  /// The registry's counter for `series`.
  private func counter(_ name: AgentCounters.Name, labels: [(String, String)]) -> Counter {
    self.registry.makeCounter(
      descriptor: Self.descriptor(
        name.rawValue, unit: "total", help: "Count of \(name.rawValue.replacingOccurrences(of: "_", with: " "))"),
      labels: labels
    )
  }

  package func recordIssuance(duration: Duration, succeeded: Bool) {
    (succeeded ? self.issuance : self.issuanceFailures).record(duration)
  }

  /// The text exposition, with the gauges brought up to date; `trustBundleRoots` counts the roots
  /// of each trust domain's bundle, `revocationListEntries` the certificates its lists revoke.
  package func render(
    counters: AgentCounters, identities: [IdentitySnapshot], trustBundleRoots: [String: Int] = [:],
    revocationListEntries: [String: Int] = [:], now: Date
  ) -> String {
    self.scrape.withLock { gauges in
      self.copyCounts(from: counters)
      self.streamsOpen.set(Double(counters.openStreams))
      var expiry: [String: Double] = [:]
      for svid in identities.compactMap(\.served.svid) {
        expiry[svid.identity.description] = svid.notAfter.timeIntervalSince(now)
      }
      // An identity that is gone (evicted, expired) leaves the exposition with it.
      self.set(&gauges.expiry, to: expiry, descriptor: Self.expiry, label: "identity")
      self.set(
        &gauges.roots, to: trustBundleRoots.mapValues(Double.init), descriptor: Self.roots, label: "trust_domain")
      self.set(
        &gauges.crlEntries, to: revocationListEntries.mapValues(Double.init), descriptor: Self.crlEntries,
        label: "trust_domain")
      var buffer: [UInt8] = []
      self.registry.emit(into: &buffer)
      return String(decoding: buffer, as: UTF8.self)
    }
  }

  /// Sets one gauge per label value to `values`, unregistering the gauges of values gone.
  private func set(
    _ gauges: inout [String: Gauge], to values: [String: Double], descriptor: MetricNameDescriptor, label: String
  ) {
    var current: [String: Gauge] = [:]
    for (value, number) in values {
      let gauge = gauges[value] ?? self.registry.makeGauge(descriptor: descriptor, labels: [(label, value)])
      gauge.set(number)
      current[value] = gauge
    }
    for (value, gauge) in gauges where current[value] == nil {
      self.registry.unregisterGauge(gauge)
    }
    gauges = current
  }

  static var roots: MetricNameDescriptor {
    self.descriptor("trust_bundle_roots", unit: "", help: "Roots in the trust bundle served for a trust domain")
  }

  static var crlEntries: MetricNameDescriptor {
    self.descriptor(
      "crl_entries", unit: "", help: "Certificates revoked by the revocation lists served for a trust domain")
  }

  static var expiry: MetricNameDescriptor {
    self.descriptor("certificate_expiry", unit: "seconds", help: "Seconds until the served certificate expires")
  }

  /// Sets the registry's counters to the counts. Unlabelled counters exist from the start, so a
  /// scrape shows 0 rather than nothing.
  private func copyCounts(from counters: AgentCounters) {
    var values: [AgentCounters.Series: Int] = [:]
    for name in AgentCounters.Name.allCases where !Self.labelled.contains(name) {
      values[AgentCounters.Series(name: name, labels: [])] = 0
    }
    for (series, value) in counters.series {
      values[series] = value
    }
    for (series, value) in values {
      let counter = self.counter(series.name, labels: series.labels.map { ($0.name, $0.value) })
      counter.reset()
      counter.increment(by: Int64(value))
    }
  }

  /// Counters that only exist with labels.
  static let labelled: Set<AgentCounters.Name> = [
    .nacks, .issuanceFailures, .callersRefused, .trustBundleErrors, .onDemandRefused, .fileSecretErrors,
    .operatorCAErrors,
    .workloadAPICalls,
    .crlFetchErrors,
    .sessionTicketSeedErrors,
  ]
}
