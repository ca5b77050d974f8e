/// How an identity's certificates are issued and renewed; reload may replace it.
package struct IdentitySettings: Sendable, Equatable {
  package var keyType: WorkloadKeyType
  package var ttl: Duration
  package var schedule: RotationSchedule
  package var backoff: Backoff

  package init(
    keyType: WorkloadKeyType,
    ttl: Duration,
    schedule: RotationSchedule = RotationSchedule(),
    backoff: Backoff = Backoff()
  ) {
    self.keyType = keyType
    self.ttl = ttl
    self.schedule = schedule
    self.backoff = backoff
  }

  /// Whether certificates issued under `self` must be replaced at once under `other`.
  func requiresReissue(under other: IdentitySettings) -> Bool {
    self.ttl != other.ttl || self.keyType != other.keyType
  }
}
