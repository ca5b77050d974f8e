/// How much one caller may ask of the agent, and how long an identity without streams is kept.
package struct CallerLimits: Sendable, Equatable {
  /// New streams per caller.
  package var streamRate: Rate
  /// Certificates a caller's streams may cause to be issued (first issuance, new tokens).
  package var certificateRate: Rate
  /// How long an identity without streams is kept.
  package var idleTimeout: Duration

  package init(
    streamRate: Rate = Rate(count: 50, period: .seconds(1)),
    certificateRate: Rate = Rate(count: 10, period: .seconds(60)),
    idleTimeout: Duration = .seconds(600)
  ) {
    self.streamRate = streamRate
    self.certificateRate = certificateRate
    self.idleTimeout = idleTimeout
  }
}
