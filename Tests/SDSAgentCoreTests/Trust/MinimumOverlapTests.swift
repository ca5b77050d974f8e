import SDSAgentCore
import Testing

@Suite struct MinimumOverlapTests {
  let minimum = MinimumOverlap.renewal(maximumTTL: .seconds(600))

  @Test(arguments: [Duration.seconds(600), .seconds(3600)])
  func anOverlapOfAtLeastTheMaximumLifetimeIsAccepted(overlap: Duration) {
    #expect(self.minimum.refusal(of: overlap) == nil)
  }

  @Test func aShorterOneIsRefusedWithTheReasonAndTheFix() throws {
    let refusal = try #require(self.minimum.refusal(of: .seconds(599)))
    #expect(refusal.hasPrefix("the overlap 599s is too short: it must be at least --max-ttl (10m), because "))
    #expect(refusal.contains("an agent learns the new root only when it renews its certificate"))
    #expect(refusal.contains("--ca-root"))
  }
}
