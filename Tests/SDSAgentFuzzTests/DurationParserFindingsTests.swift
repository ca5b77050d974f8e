import SDSAgentCore
import Testing

/// Crashes the fuzzer found in `DurationParser` (inputs in Tests/fuzz-corpus/duration/), each
/// run in a child process that must exit normally.
@Suite struct DurationParserFindingsTests {
  /// Twenty `9223372036854775807s` add up past `Duration`'s range: `+` trapped
  /// ("Overflow in +"). The parser reads every duration setting (`cert-ttl`, …).
  @Test func sumBeyondDurationRangeIsRejected() async {
    await #expect(processExitsWith: .success) {
      let text = String(repeating: "9223372036854775807s", count: 20)
      precondition(DurationParser.parse(text) == nil)
    }
  }

  /// `format` computed milliseconds as `seconds * 1000` in Int64: a duration over ~9.2e15 s with
  /// a millisecond part trapped.
  @Test func formatOfHugeDurationWithMilliseconds() async {
    await #expect(processExitsWith: .success) {
      #expect(DurationParser.parse("9223372036854776s1ms") == nil)
      _ = DurationParser.format(.seconds(9_223_372_036_854_776) + .milliseconds(1))
    }
  }
}
