/// How an identity's certificates are issued and renewed; reload may replace it.
public struct IdentitySettings: Sendable, Equatable {
  public var keyType: WorkloadKeyType
  public var ttl: Duration
  public var schedule: RotationSchedule
  public var backoff: Backoff

  public init(
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
