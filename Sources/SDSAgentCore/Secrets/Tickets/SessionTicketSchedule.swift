import Foundation

/// Epochs of session ticket keys: epoch = floor(unix time / period), the same on every gateway
/// whose clock is right.
package struct SessionTicketSchedule: Sendable, Hashable {
  package let period: Duration

  package static let minimumPeriod = Duration.seconds(10)

  package init(period: Duration) {
    self.period = max(period, Self.minimumPeriod)
  }

  private var periodSeconds: Int64 { self.period.components.seconds }

  /// The epoch `date` lies in.
  package func epoch(at date: Date) -> Int64 {
    let seconds = date.timeIntervalSince1970.rounded(.down)
    let unix = Int64(exactly: seconds) ?? 0
    return unix >= 0 ? unix / self.periodSeconds : (unix + 1) / self.periodSeconds - 1
  }

  /// When `epoch` begins.
  package func start(of epoch: Int64) -> Date {
    Date(timeIntervalSince1970: TimeInterval(epoch) * TimeInterval(self.periodSeconds))
  }

  /// The next epoch boundary after `date`.
  package func nextBoundary(after date: Date) -> Date {
    self.start(of: self.epoch(at: date) + 1)
  }
}
