import GRPCCore
import SDSAgent
import Testing

/// The agent reads gRPC's `grpc-retry-pushback-ms` as the CA wrote it, bounded.
@Suite struct RetryPushbackTests {
  @Test(arguments: [
    ("250", Duration.milliseconds(250)), ("0", .zero), ("86400000", IstioCAClient.longestPushback),
  ])
  func aHintIsAWholeNumberOfMilliseconds(text: String, expected: Duration) {
    #expect(IstioCAClient.retryPushback(Self.trailers(text)) == expected)
  }

  static func trailers(_ pushback: String) -> Metadata {
    var metadata = Metadata()
    metadata.addString(pushback, forKey: "grpc-retry-pushback-ms")
    return metadata
  }

  @Test(arguments: ["-1", "1.5", "soon", "", "99999999999999999999"])
  func anythingElseIsNoHint(text: String) {
    #expect(IstioCAClient.retryPushback(Self.trailers(text)) == nil)
    #expect(IstioCAClient.retryPushback([:]) == nil)
  }
}
