import SDSAgentCore

/// `ca serve`'s admission control as a value: calls in flight up to `maximumInFlight`, and a
/// token bucket per caller refilled at `callerRate` a second (burst: one second's worth, at
/// least one). Its table of callers is bounded: callers whose bucket has refilled are idle and
/// go first, then the least recently seen. Times are arguments.
package struct AdmissionState<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
  package struct Limits: Sendable, Equatable {
    /// Calls in flight at most (from their start to their answer); 0 for no cap.
    package var maximumInFlight: Int
    /// Signings a second per caller; 0 for no cap.
    package var callerRate: Double
    /// Callers remembered at most.
    package var maximumCallers: Int

    package init(maximumInFlight: Int, callerRate: Double = 0, maximumCallers: Int = 10_000) {
      self.maximumInFlight = maximumInFlight
      self.callerRate = callerRate
      self.maximumCallers = max(1, maximumCallers)
    }

    /// The tokens a caller's bucket holds when full.
    var burst: Double { max(1, self.callerRate.rounded(.up)) }
  }

  struct Bucket: Sendable {
    var tokens: Double
    var refilledAt: Instant
  }

  package let limits: Limits
  package private(set) var inFlight = 0
  private var buckets: [SPIFFEID: Bucket] = [:]
  /// Refusals for lack of a slot since `windowStart`, which sizes the retry hint.
  private var refusedInWindow = 0
  private var windowStart: Instant?
  /// How long one call takes, averaged; seeds the retry hint.
  private var signingTime: Duration

  package init(limits: Limits, signingTime: Duration = .milliseconds(5)) {
    self.limits = limits
    self.signingTime = signingTime
  }

  package var callers: Int { self.buckets.count }

  /// A call starts: admitted while fewer than `maximumInFlight` are in flight.
  package mutating func start(now: Instant) -> AdmissionDecision {
    if self.limits.maximumInFlight > 0, self.inFlight >= self.limits.maximumInFlight {
      return .refused(AdmissionRefusal(.inFlight, retryAfter: self.inFlightHint(now: now)))
    }
    self.inFlight += 1
    return .admitted
  }

  /// Charges one signing to `caller`'s bucket.
  package mutating func charge(caller: SPIFFEID, now: Instant) -> AdmissionDecision {
    guard self.limits.callerRate > 0, let wait = self.takeToken(caller, now: now) else { return .admitted }
    return .refused(AdmissionRefusal(.callerRate, retryAfter: wait))
  }

  /// An admitted call ended after `took`.
  package mutating func finished(took: Duration) {
    self.inFlight = max(0, self.inFlight - 1)
    // An exponentially weighted mean, 1/8 per sample.
    self.signingTime = (self.signingTime * 7 + took) / 8
  }

  /// Takes one token from the caller's bucket, or says how long until one is there.
  private mutating func takeToken(_ caller: SPIFFEID, now: Instant) -> Duration? {
    let rate = self.limits.callerRate
    var bucket = self.buckets[caller] ?? self.newBucket(now: now)
    let elapsed = bucket.refilledAt.duration(to: now)
    bucket.tokens = min(self.limits.burst, bucket.tokens + max(0, elapsed.seconds) * rate)
    bucket.refilledAt = now
    defer { self.buckets[caller] = bucket }
    guard bucket.tokens >= 1 else {
      return .seconds((1 - bucket.tokens) / rate)
    }
    bucket.tokens -= 1
    return nil
  }

  private mutating func newBucket(now: Instant) -> Bucket {
    if self.buckets.count >= self.limits.maximumCallers { self.evict(now: now) }
    return Bucket(tokens: self.limits.burst, refilledAt: now)
  }

  /// Drops the idle callers (a full bucket is as good as none); if none is idle, the least
  /// recently seen.
  private mutating func evict(now: Instant) {
    let full = self.limits.burst / self.limits.callerRate
    self.buckets = self.buckets.filter { $0.value.refilledAt.duration(to: now).seconds < full }
    if self.buckets.count >= self.limits.maximumCallers,
      let oldest = self.buckets.min(by: { $0.value.refilledAt < $1.value.refilledAt })
    {
      self.buckets[oldest.key] = nil
    }
  }

  /// How long the callers refused in the current second take to answer, `maximumInFlight` at a
  /// time: coming back spread over that (the client adds jitter), they find slots.
  private mutating func inFlightHint(now: Instant) -> Duration {
    if let start = self.windowStart, start.duration(to: now) < .seconds(1) {
      self.refusedInWindow += 1
    } else {
      self.windowStart = now
      self.refusedInWindow = 1
    }
    let rounds = (self.refusedInWindow + self.limits.maximumInFlight - 1) / self.limits.maximumInFlight
    return min(Self.longestHint, max(Self.shortestHint, self.signingTime * rounds))
  }

  package static var shortestHint: Duration { .milliseconds(100) }
  package static var longestHint: Duration { .seconds(10) }
}
