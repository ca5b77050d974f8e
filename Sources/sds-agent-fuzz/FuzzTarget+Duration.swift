import SDSAgentCore

extension FuzzTarget {
  /// `DurationParser.parse`; an accepted duration is never negative and survives `format`.
  static let duration = FuzzTarget(
    name: "duration",
    summary: "DurationParser.parse and format round trip"
  ) { data in
    let text = String(decoding: data, as: UTF8.self)
    guard let duration = DurationParser.parse(text) else { return "rejected" }
    FuzzTarget.check(duration >= .zero, "\(text.debugDescription) parsed as a negative duration")
    let formatted = DurationParser.format(duration)
    FuzzTarget.check(
      DurationParser.parse(formatted) == duration,
      "\(text.debugDescription) parsed as \(duration), formatted as \(formatted), which parses differently")
    _ = DurationParser.formatMilliseconds(duration)
    return "\(formatted)"
  }
}
