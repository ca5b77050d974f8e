import Foundation

/// Parses durations the way operators write them: `30s`, `24h`, `1h30m`, `500ms`, `2d`.
public enum DurationParser {
  public static func parse(_ text: String) -> Duration? {
    var total = Duration.zero
    var rest = Substring(text.trimmingSpaces)
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
      let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
      guard !digits.isEmpty, let value = Int64(digits) else { return nil }
      rest = rest.dropFirst(digits.count)
      let unit = rest.prefix(while: { $0.isLetter })
      rest = rest.dropFirst(unit.count)
      let (multiplied, overflow): (Int64, Bool)
      switch unit {
      case "ms": total += .milliseconds(value); continue
      case "s": (multiplied, overflow) = value.multipliedReportingOverflow(by: 1)
      case "m": (multiplied, overflow) = value.multipliedReportingOverflow(by: 60)
      case "h": (multiplied, overflow) = value.multipliedReportingOverflow(by: 3600)
      case "d": (multiplied, overflow) = value.multipliedReportingOverflow(by: 86400)
      default: return nil
      }
      guard !overflow else { return nil }
      total += .seconds(multiplied)
    }
    return total
  }

  /// A duration in milliseconds with one decimal, for reports.
  public static func formatMilliseconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
    return String(format: "%.1f ms", milliseconds)
  }

  /// The shortest exact spelling of a duration in the units `parse` accepts.
  public static func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if attoseconds != 0 || seconds == 0 {
      let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
      return "\(ms)ms"
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
