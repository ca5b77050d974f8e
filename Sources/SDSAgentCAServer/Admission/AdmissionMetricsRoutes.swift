import SDSAgent
import SDSAgentCore

/// `ca serve`'s admin endpoint with `GET /metrics`: its admission control's counts in the
/// Prometheus text format, their labels from a closed set. Everything else goes to `routes`.
package struct AdmissionMetricsRoutes: AdminResponder {
  let routes: any AdminResponder
  let admission: SigningAdmissionControl<ContinuousClock>?

  package init(routes: any AdminResponder, admission: SigningAdmissionControl<ContinuousClock>?) {
    self.routes = routes
    self.admission = admission
  }

  package func respond(method: String, target: String) async -> AdminResponse {
    await self.respond(method: method, target: target, body: [])
  }

  package func respond(method: String, target: String, body: [UInt8]) async -> AdminResponse {
    guard method == "GET", target == "/metrics" || target.hasPrefix("/metrics?") else {
      return await self.routes.respond(method: method, target: target, body: body)
    }
    return .text(200, Self.render(self.admission?.figures, limits: self.admission?.limits))
  }

  static func render(
    _ figures: SigningAdmissionControl<ContinuousClock>.Figures?,
    limits: AdmissionState<ContinuousClock.Instant>.Limits?
  ) -> String {
    let figures = figures ?? .init(admitted: 0, refused: [:], inFlight: 0, callers: 0)
    var lines = [
      "# HELP sds_agent_ca_calls_admitted_total Certificate requests admission control let start.",
      "# TYPE sds_agent_ca_calls_admitted_total counter",
      "sds_agent_ca_calls_admitted_total \(figures.admitted)",
      "# HELP sds_agent_ca_admission_refusals_total Certificate requests refused with UNAVAILABLE and a retry hint.",
      "# TYPE sds_agent_ca_admission_refusals_total counter",
    ]
    for reason in AdmissionRefusal.Reason.allCases {
      lines.append(
        "sds_agent_ca_admission_refusals_total{reason=\"\(reason.rawValue)\"} \(figures.refused[reason] ?? 0)")
    }
    lines += [
      "# HELP sds_agent_ca_calls_in_flight Certificate requests in flight now.",
      "# TYPE sds_agent_ca_calls_in_flight gauge",
      "sds_agent_ca_calls_in_flight \(figures.inFlight)",
      "# HELP sds_agent_ca_calls_in_flight_limit --max-inflight (0: no cap).",
      "# TYPE sds_agent_ca_calls_in_flight_limit gauge",
      "sds_agent_ca_calls_in_flight_limit \(limits?.maximumInFlight ?? 0)",
      "# HELP sds_agent_ca_admission_callers Callers whose rate is tracked.",
      "# TYPE sds_agent_ca_admission_callers gauge",
      "sds_agent_ca_admission_callers \(figures.callers)",
    ]
    return lines.joined(separator: "\n") + "\n"
  }
}
