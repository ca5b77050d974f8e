import SDSAgentCore
import Testing

/// A request's names are bounded before they are looked at, and an error never echoes more of
/// them than fits in a short status message.
@Suite struct SecretNamingLimitsTests {
  static let naming = SecretNaming(identity: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default"))

  func refusal(_ names: [String]) -> SDSRequestError? {
    do {
      _ = try Self.naming.resolve(names)
      return nil
    } catch {
      return error
    }
  }

  @Test func moreNamesThanTheLimitAreInvalidArgumentWithoutEchoingThem() throws {
    let names = (0..<100_000).map { "unknown-resource-\($0)" }
    let error = try #require(self.refusal(names))
    #expect(error.code == .tooManyNames)
    #expect(error.rpcErrorCode == .invalidArgument)
    #expect(error.message.contains("100000") && error.message.contains("\(SDSRequest.maximumResourceNames)"))
    #expect(!error.message.contains("unknown-resource-"))
  }

  @Test func aNameLongerThanASPIFFEIDIsInvalidArgumentAndShownCut() throws {
    let name = String(repeating: "a", count: 10_000_000)
    let error = try #require(self.refusal(["default", name]))
    #expect(error.code == .invalidName)
    #expect(error.rpcErrorCode == .invalidArgument)
    #expect(error.message.contains("10000000 bytes") && error.message.contains("2048"))
    #expect(error.message.utf8.count < 1024)
  }

  @Test func unknownNamesAreShownCutAndCounted() throws {
    let names = (0..<SDSRequest.maximumResourceNames).map {
      "\($0)-" + String(repeating: "x", count: SDSRequest.maximumNameLength - 8)
    }
    let error = try #require(self.refusal(names))
    #expect(error.code == .unknownResource)
    #expect(error.message.contains("and \(SDSRequest.maximumResourceNames - 4) more"))
    #expect(error.message.contains("\"ROOTCA\""))
    #expect(error.message.utf8.count < 2048)
  }

  @Test func namesAtTheLimitsAreLookedUp() throws {
    let names = Array(repeating: "default", count: SDSRequest.maximumResourceNames)
    #expect(try Self.naming.resolve(names) == [.tlsCertificate])
  }

  @Test func anUnsupportedTypeIsShownCut() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let typeURL = String(repeating: "t", count: 100_000)
    #expect {
      _ = try machine.receive(SDSRequest(resourceNames: ["default"], typeURL: typeURL), served: .empty)
    } throws: { error in
      guard let error = error as? SDSRequestError else { return false }
      return error.code == .unsupportedType && error.message.utf8.count < 1024
    }
  }
}
