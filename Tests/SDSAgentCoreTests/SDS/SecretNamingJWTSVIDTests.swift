import SDSAgentCore
import Testing

/// `jwt-svid:<audience>` names: a bounded audience of visible ASCII, served on streams of an
/// agent that signs JWT-SVIDs; a bad audience is an unknown name, and where no token can be
/// served the refusal says why.
@Suite struct SecretNamingJWTSVIDTests {
  static let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")

  func naming(_ names: JWTSVIDNames) -> SecretNaming {
    var naming = SecretNaming(identity: Self.identity)
    naming.jwtSVIDs = names
    return naming
  }

  func refusal(_ names: [String], _ served: JWTSVIDNames = .served) -> SDSRequestError? {
    do {
      _ = try self.naming(served).resolve(names)
      return nil
    } catch {
      return error
    }
  }

  @Test func aJWTSVIDNameResolvesToItsAudienceAndBack() throws {
    let resolved = try self.naming(.served).resolve(["default", "jwt-svid:backend", "jwt-svid:spiffe://x.org/api"])
    let audience = try #require(JWTAudience("backend"))
    #expect(
      resolved.map(\.resource) == [.tlsCertificate, .jwtSVID(audience), .jwtSVID(JWTAudience("spiffe://x.org/api")!)])
    #expect(resolved.map(\.name) == resolved.map(\.resource.name))
    #expect(SecretResource.jwtSVID(audience).name == "jwt-svid:backend")
    #expect(!SecretResource.jwtSVID(audience).carriesBundle(of: TrustDomainName(of: Self.identity)))
  }

  @Test(arguments: [
    "jwt-svid:", "jwt-svid:two words", "jwt-svid:tab\there", "jwt-svid:caf\u{E9}",
    "jwt-svid:" + String(repeating: "a", count: JWTAudience.maximumLength + 1),
  ])
  func aBadAudienceIsAnUnknownNameShownCut(_ name: String) throws {
    let error = try #require(self.refusal([name]))
    #expect(error.code == .unknownResource && error.rpcErrorCode == .notFound)
    #expect(error.message.utf8.count < 1024)
    #expect(self.refusal(["no-such-name"])?.code == error.code)
  }

  @Test func theLongestAudienceIsServed() throws {
    let name = "jwt-svid:" + String(repeating: "a", count: JWTAudience.maximumLength)
    #expect(try self.naming(.served).resolve([name]).first?.resource.name == name)
  }

  @Test func anAgentThatSignsNoJWTSVIDsSaysSo() throws {
    let error = try #require(self.refusal(["jwt-svid:backend"], .notSigned))
    #expect(error.code == .unknownResource)
    #expect(error.message.contains("signs no JWT-SVIDs") && error.message.contains("\"jwt-svid:backend\""))
    // The default: a naming that was never told refuses them the same way.
    #expect(throws: error) {
      try SecretNaming(identity: Self.identity).resolve(["jwt-svid:backend"])
    }
  }

  @Test func fetchSecretsIsToldToUseAStream() throws {
    let error = try #require(self.refusal(["jwt-svid:backend"], .notOnFetch))
    #expect(error.code == .unknownResource)
    #expect(error.message.contains("StreamSecrets") && error.message.contains("FetchJWTSVID"))
  }

  @Test func aJWTSVIDNameIsNeverTakenForAnOnDemandName() throws {
    var naming = self.naming(.served)
    naming.onDemand = true
    let resolved = try naming.resolve(["jwt-svid:backend"])
    #expect(resolved.map(\.resource) == [.jwtSVID(JWTAudience("backend")!)])
  }
}
