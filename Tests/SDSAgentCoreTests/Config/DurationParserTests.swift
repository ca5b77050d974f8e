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

  @Test(arguments: [Duration.seconds(86400), .seconds(3600), .seconds(90), .seconds(20), .milliseconds(1500)])
  func formatRoundTrips(duration: Duration) {
    #expect(DurationParser.parse(DurationParser.format(duration)) == duration)
  }
}
