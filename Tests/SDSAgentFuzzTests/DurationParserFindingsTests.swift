import SDSAgentCore
import Testing

/// Crashes the fuzzer found in `DurationParser` (Tests/fuzz-findings/duration/), not fixed yet:
/// each runs in a child process that must exit normally. They are known issues until the parser
/// is fixed; then `withKnownIssue` fails, and the inputs move to Tests/fuzz-corpus/duration/
/// (and the duration target stops skipping large values).
@Suite struct DurationParserFindingsTests {
  /// Twenty `9223372036854775807s` add up past `Duration`'s range: `+` traps
  /// ("Overflow in +"). The parser reads every duration setting (`cert-ttl`, …).
  @Test func sumBeyondDurationRangeIsRejected() async {
    await withKnownIssue("DurationParser.parse traps when the sum overflows Duration") {
      await #expect(processExitsWith: .success) {
        let text = String(repeating: "9223372036854775807s", count: 20)
        precondition(DurationParser.parse(text) == nil)
      }
    }
  }

  /// `format` computes milliseconds as `seconds * 1000` in Int64: a duration over
  /// ~9.2e15 s with a millisecond part traps.
  @Test func formatOfHugeDurationWithMilliseconds() async {
    await withKnownIssue("DurationParser.format overflows for durations over Int64.max ms") {
      await #expect(processExitsWith: .success) {
        if let duration = DurationParser.parse("9223372036854776s1ms") {
          _ = DurationParser.format(duration)
        }
      }
    }
  }
}
