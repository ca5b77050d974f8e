import SDSAgentCore
import Testing

@Suite struct DurationParserTests {
  @Test(arguments: [
    ("30s", Duration.seconds(30)),
    ("24h", .seconds(86400)),
    ("1h30m", .seconds(5400)),
    ("500ms", .milliseconds(500)),
    ("2d", .seconds(172_800)),
    (" 20s ", .seconds(20)),
  ])
  func parses(text: String, expected: Duration) {
    #expect(DurationParser.parse(text) == expected)
  }

  @Test(arguments: ["", "10", "s", "10x", "-5s", "1.5h", "99999999999999999999s"])
  func rejects(text: String) {
    #expect(DurationParser.parse(text) == nil)
  }

  @Test(arguments: [
    "9223372036854775807s", "99999999999999999999h", "106751991168d",
    String(repeating: "9223372036854775807ms", count: 20),
    String(repeating: "9000000000000000ms", count: 2000),
  ])
  func aValueTooLargeToCountIsNotADurationAndDoesNotTrap(text: String) {
    #expect(DurationParser.parse(text) == nil)
  }

  @Test func theLargestCountableValueParses() {
    #expect(DurationParser.parse("9223372036854775807ms") == .milliseconds(Int64.max))
    #expect(DurationParser.parse("106751991168d") == nil)
    #expect(DurationParser.parse("106751991d") == .seconds(Int64(106_751_991) * 86400))
  }

  @Test func aRangeBoundsTheValue() {
    let range = Duration.seconds(2) ... .seconds(365 * 86400)
    #expect(DurationParser.parse("365d", in: range) == .seconds(365 * 86400))
    #expect(DurationParser.parse("365d1ms", in: range) == nil)
    #expect(DurationParser.parse("1s", in: range) == nil)
    #expect(DurationParser.parse("2s", in: range) == .seconds(2))
  }

  @Test(arguments: [Duration.seconds(86400), .seconds(3600), .seconds(90), .seconds(20), .milliseconds(1500)])
  func formatRoundTrips(duration: Duration) {
    #expect(DurationParser.parse(DurationParser.format(duration)) == duration)
  }
}
