import Crypto
import Foundation
import GRPCCore
import SDSAgentCore
import Testing

/// The JWT-SVID signer and `ValidateJWTSVID`'s checks: a token it signs validates with its
/// bundle for the audience asked, and every kind of bad token is refused with its reason.
@Suite struct JWTSVIDTests {
  let key = JWTSigningKey()
  let domain = try! TrustDomainName(parsing: "cluster.local")
  let now = Fixtures.now

  var validator: JWTSVIDValidator {
    JWTSVIDValidator(bundles: [JWTBundle(trustDomain: self.domain, keys: [self.key.publicKey])])
  }

  func sign(_ id: SPIFFEID = Fixtures.identity, audience: [String] = ["backend"]) throws -> JWTSVID {
    try JWTSVIDSigner(key: self.key).sign(id, audience: audience, issuedAt: self.now, ttl: .seconds(300))
  }

  func part(_ token: String, _ index: Int) throws -> [String: Any] {
    var text = String(token.split(separator: ".")[index])
    text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    text += String(repeating: "=", count: (4 - text.count % 4) % 4)
    let data = try #require(Data(base64Encoded: text))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  func refusal(_ token: String, audience: String = "backend", at date: Date? = nil) -> JWTSVIDFailure? {
    #expect(throws: JWTSVIDFailure.self) {
      try self.validator.validate(token, audience: audience, now: date ?? self.now)
    }
  }

  @Test func aSignedTokenCarriesTheClaimsAndValidates() throws {
    let svid = try self.sign(audience: ["backend", "audit"])
    let header = try self.part(svid.token, 0)
    #expect(header["alg"] as? String == "ES256")
    #expect(header["kid"] as? String == self.key.kid)
    let claims = try self.part(svid.token, 1)
    #expect(claims["sub"] as? String == Fixtures.identity.description)
    #expect(claims["aud"] as? [String] == ["backend", "audit"])
    #expect(claims["iat"] as? Int == Int(self.now.timeIntervalSince1970))
    #expect(claims["exp"] as? Int == Int(self.now.timeIntervalSince1970) + 300)
    #expect(svid.expiresAt == self.now.addingTimeInterval(300))
    #expect(!svid.description.contains(svid.token))

    let validated = try self.validator.validate(svid.token, audience: "audit", now: self.now.addingTimeInterval(299))
    #expect(validated.spiffeID == Fixtures.identity)
    let echoed = try #require(try JSONSerialization.jsonObject(with: validated.claimsJSON) as? [String: Any])
    #expect(echoed["sub"] as? String == Fixtures.identity.description)
  }

  @Test func aTokenForAnotherAudienceIsRefused() throws {
    #expect(self.refusal(try self.sign().token, audience: "frontend")?.code == .wrongAudience)
  }

  @Test func anExpiredTokenIsRefused() throws {
    let refusal = self.refusal(try self.sign().token, at: self.now.addingTimeInterval(300))
    #expect(refusal?.code == .expired)
    #expect(refusal?.rpcErrorCode == .invalidArgument)
  }

  @Test func aTokenOfAnUnknownKeyIsRefused() throws {
    let other = try JWTSVIDSigner(key: JWTSigningKey()).sign(
      Fixtures.identity, audience: ["backend"], issuedAt: self.now, ttl: .seconds(300))
    #expect(self.refusal(other.token)?.code == .unknownKey)
  }

  @Test func aTokenOfAForeignTrustDomainIsRefused() throws {
    let foreign = try SPIFFEID(parsing: "spiffe://example.org/ns/web/sa/api")
    let refusal = self.refusal(try self.sign(foreign).token)
    #expect(refusal?.code == .unknownTrustDomain)
    #expect(refusal?.message.contains("example.org") == true)
  }

  @Test func anUnsignedTokenIsRefused() throws {
    let svid = try self.sign()
    let parts = svid.token.split(separator: ".")
    let none = Data(#"{"alg":"none","kid":"\#(self.key.kid)"}"#.utf8).base64EncodedString()
      .replacingOccurrences(of: "=", with: "")
    #expect(self.refusal("\(none).\(parts[1]).")?.code == .unsupportedAlgorithm)
  }

  @Test func aTamperedTokenIsRefused() throws {
    let svid = try self.sign()
    let other = try self.sign(try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/admin"))
    let parts = svid.token.split(separator: ".")
    let swapped = "\(parts[0]).\(other.token.split(separator: ".")[1]).\(parts[2])"
    #expect(self.refusal(swapped)?.code == .badSignature)
    #expect(self.refusal("not a token")?.code == .malformed)
    #expect(self.refusal(String(repeating: "a", count: JWTSVIDValidator.maximumTokenBytes + 1))?.code == .malformed)
  }

  @Test func theBundleIsAJWKSetOfNamedKeys() throws {
    let second = JWTSigningKey()
    let bundle = JWTBundle(trustDomain: self.domain, keys: [self.key.publicKey, second.publicKey, self.key.publicKey])
    let document = try #require(try JSONSerialization.jsonObject(with: bundle.jwks()) as? [String: Any])
    let keys = try #require(document["keys"] as? [[String: String]])
    #expect(keys.map { $0["kid"] } == [self.key.kid, second.kid])
    #expect(keys.allSatisfy { $0["kty"] == "EC" && $0["crv"] == "P-256" && $0["use"] == "jwt-svid" })
    #expect(keys.allSatisfy { $0["x"]?.count == 43 && $0["y"]?.count == 43 })
    #expect(self.key.kid != second.kid)
    let raw = P256.Signing.PrivateKey()
    #expect(JWTSigningKey(raw).kid == JWTSigningKey(raw).kid)
    #expect(!self.key.description.contains("BEGIN"))
  }

  @Test func theIssuerKeepsATokenForHalfItsLifePerAudienceSet() throws {
    let issuer = JWTSVIDIssuer(signer: JWTSVIDSigner(key: self.key), trustDomain: self.domain, ttl: .seconds(300))
    let first = try issuer.svid(for: Fixtures.identity, audience: ["b", "a"], now: self.now)
    #expect(first.audience == ["a", "b"])
    let kept = try issuer.svid(
      for: Fixtures.identity, audience: ["a", "b", "a"], now: self.now.addingTimeInterval(149))
    #expect(kept.token == first.token)
    let other = try issuer.svid(for: Fixtures.identity, audience: ["a"], now: self.now.addingTimeInterval(149))
    #expect(other.token != first.token)
    let renewed = try issuer.svid(for: Fixtures.identity, audience: ["a", "b"], now: self.now.addingTimeInterval(150))
    #expect(renewed.token != first.token)
    #expect(renewed.expiresAt == self.now.addingTimeInterval(450))
    #expect(
      try issuer.validator.validate(renewed.token, audience: "a", now: self.now.addingTimeInterval(151)).spiffeID
        == Fixtures.identity)
  }
}
