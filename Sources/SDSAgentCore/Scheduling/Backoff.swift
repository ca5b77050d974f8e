/// Exponential backoff with full jitter, capped (the AWS "full jitter" scheme gRPC also uses).
package struct Backoff: Sendable, Equatable {
  package var initial: Duration
  package var maximum: Duration
  package var multiplier: Double
  private(set) var attempt = 0

  package init(initial: Duration = .seconds(1), maximum: Duration = .seconds(60), multiplier: Double = 2) {
    self.initial = initial
    self.maximum = maximum
    self.multiplier = multiplier
  }

  /// The upper bound of the next delay; grows with each call until `maximum`.
  package mutating func nextCeiling() -> Duration {
    var ceiling = self.initial
    for _ in 0..<self.attempt where ceiling < self.maximum {
      ceiling = ceiling * self.multiplier
    }
    // Once at the maximum the ceiling stays there, so no number of failures can overflow it.
    if ceiling < self.maximum { self.attempt += 1 }
    return min(ceiling, self.maximum)
  }

  /// The next delay: uniformly random in `0...ceiling`, drawn from `sample` in `0...1`.
  package mutating func nextDelay(sample: Double) -> Duration {
    self.nextCeiling() * max(0, min(1, sample))
  }

  package mutating func reset() {
    self.attempt = 0
  }
}
