import SDSAgentCore

extension CAServer {
  /// The admission control `--max-inflight` and `--caller-rate` ask for; none when both are 0.
  static func admission(_ configuration: CAServerConfiguration) -> SigningAdmissionControl<ContinuousClock>? {
    guard configuration.maximumInFlight > 0 || configuration.callerRate > 0 else { return nil }
    return SigningAdmissionControl(
      limits: .init(maximumInFlight: configuration.maximumInFlight, callerRate: configuration.callerRate),
      clock: ContinuousClock())
  }
}
