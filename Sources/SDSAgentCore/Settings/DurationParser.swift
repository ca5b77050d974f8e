import Foundation

/// Parses durations the way operators write them: `30s`, `24h`, `1h30m`, `500ms`, `2d`.
/// Overflow-safe: a value too large to count in milliseconds is not a duration.
package enum DurationParser {
  package static func parse(_ text: String) -> Duration? {
    var milliseconds: Int64 = 0
    var rest = Substring(text.trimmingSpaces)
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
      let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
      guard !digits.isEmpty, let value = Int64(digits) else { return nil }
      rest = rest.dropFirst(digits.count)
      let unit = rest.prefix(while: { $0.isLetter })
      rest = rest.dropFirst(unit.count)
      guard let size = Self.unitMilliseconds[String(unit)] else { return nil }
      let (term, termOverflow) = value.multipliedReportingOverflow(by: size)
      let (sum, sumOverflow) = milliseconds.addingReportingOverflow(term)
      guard !termOverflow, !sumOverflow else { return nil }
      milliseconds = sum
    }
    return .milliseconds(milliseconds)
  }

  /// A duration within `range`, or `nil`.
  package static func parse(_ text: String, in range: ClosedRange<Duration>) -> Duration? {
    self.parse(text).flatMap { range.contains($0) ? $0 : nil }
  }

  private static let unitMilliseconds: [String: Int64] = [
    "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
  ]

  /// A duration in milliseconds with one decimal, for reports.
  package static func formatMilliseconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
    return String(format: "%.1f ms", milliseconds)
  }

  /// The shortest exact spelling of a duration in the units `parse` accepts.
  package static func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if attoseconds != 0 || seconds == 0 {
      let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
      // Past Int64 milliseconds (never a parsed duration), the fraction is dropped, not trapped on.
      guard !overflow else { return "\(seconds)s" }
      return "\(milliseconds + attoseconds / 1_000_000_000_000_000)ms"
    }
    for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where seconds % size == 0 {
      return "\(seconds / size)\(unit)"
    }
    return "\(seconds)s"
  }
}

extension String {
  var trimmingSpaces: Substring {
    let start = self.firstIndex(where: { !$0.isWhitespace }) ?? self.endIndex
    let end = self.lastIndex(where: { !$0.isWhitespace }).map { self.index(after: $0) } ?? start
    return self[start..<end]
  }
}
