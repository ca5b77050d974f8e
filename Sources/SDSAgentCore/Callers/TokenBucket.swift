import Foundation

/// A rate: `count` events per `period`, with bursts of up to `count`. Written `50/s`, `10/m`
/// or `600/h`.
package struct Rate: Sendable, Equatable, CustomStringConvertible {
  package var count: Int
  package var period: Duration

  package init(count: Int, period: Duration) {
    self.count = count
    self.period = period
  }

  package init?(parsing text: String) {
    let parts = text.split(separator: "/")
    guard parts.count == 2, let count = Int(parts[0]), count > 0 else { return nil }
    switch parts[1] {
    case "s": self.init(count: count, period: .seconds(1))
    case "m": self.init(count: count, period: .seconds(60))
    case "h": self.init(count: count, period: .seconds(3600))
    default: return nil
    }
  }

  package var description: String {
    let unit = self.period == .seconds(1) ? "s" : self.period == .seconds(60) ? "m" : "h"
    return "\(self.count)/\(unit)"
  }
}

/// A token bucket: starts full, refills continuously at `rate`.
package struct TokenBucket: Sendable {
  package let rate: Rate
  private var tokens: Double
  private var updated: Date

  package init(rate: Rate, now: Date) {
    self.rate = rate
    self.tokens = Double(rate.count)
    self.updated = now
  }

  /// Whether the bucket has refilled completely by `now`, so that a new one would be the same.
  package func isFull(at now: Date) -> Bool {
    let perSecond = Double(self.rate.count) / Double(self.rate.period.components.seconds)
    return self.tokens + max(0, now.timeIntervalSince(self.updated)) * perSecond >= Double(self.rate.count)
  }

  /// Takes one token if there is one; otherwise returns how long until there will be.
  package mutating func take(now: Date) -> Duration? {
    let perSecond = Double(self.rate.count) / Double(self.rate.period.components.seconds)
    let elapsed = max(0, now.timeIntervalSince(self.updated))
    self.tokens = min(Double(self.rate.count), self.tokens + elapsed * perSecond)
    self.updated = now
    guard self.tokens >= 1 else {
      return .milliseconds(Int64(((1 - self.tokens) / perSecond * 1000).rounded(.up)))
    }
    self.tokens -= 1
    return nil
  }
}
