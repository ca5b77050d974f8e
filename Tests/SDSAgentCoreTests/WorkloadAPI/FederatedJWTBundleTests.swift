import Foundation
import SDSAgentCore
import Testing
import X509

/// A federated trust domain's SPIFFE bundle with `jwt-svid` keys: its EC P-256 keys are read
/// (bounded), and its tokens validate against them; a domain with no JWT keys is still refused.
@Suite struct FederatedJWTBundleTests {
  let other = try! TrustDomainName(parsing: "other.example")
  let otherKey = JWTSigningKey()
  let otherRoot = try! CAMaterial.generateRoot(trustDomain: "other.example", now: Fixtures.now)
  let ownKey = JWTSigningKey()

  /// A SPIFFE bundle document with the other domain's root and `keys` as its other keys.
  func document(_ keys: [[String: String]]) throws -> Data {
    let root: [String: Any] = [
      "use": "x509-svid", "kty": "EC", "crv": "P-256",
      "x5c": [Data(try self.otherRoot.certificate.serializeAsPEM().derBytes).base64EncodedString()],
    ]
    return try JSONSerialization.data(withJSONObject: ["keys": [root] + keys.map { $0 as Any }])
  }

  func jwk(_ key: JWTSigningKey) throws -> [String: String] {
    let data = try JSONEncoder().encode(key.publicKey.jwkValue)
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
  }

  func bundles(federated: [JWTPublicKey]) -> JWTBundleSet {
    JWTBundleSet(
      own: JWTBundle(trustDomain: TrustDomainName(of: Fixtures.identity), keys: [self.ownKey.publicKey]),
      federated: [self.other: JWTBundle(trustDomain: self.other, keys: federated)])
  }

  func token(_ key: JWTSigningKey, _ id: String) throws -> String {
    try JWTSVIDSigner(key: key).sign(
      try SPIFFEID(parsing: id), audience: ["backend"], issuedAt: Fixtures.now, ttl: .seconds(300)
    ).token
  }

  @Test func aSPIFFEBundlesP256JWTKeysAreReadAndOtherTypesSkipped() throws {
    let rsa = ["use": "jwt-svid", "kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"]
    let document = try BundleDocument(
      parsing: try self.document([try self.jwk(self.otherKey), rsa, try self.jwk(self.otherKey)]), now: Fixtures.now)
    #expect(document.trustBundle == self.otherRoot.trustBundle)
    #expect(document.jwtKeys == [self.otherKey.publicKey])
    #expect(document.skippedJWTKeys == 1)
    #expect(try BundleDocument(parsing: try self.document([]), now: Fixtures.now).jwtKeys.isEmpty)
  }

  @Test func aMalformedP256KeyOrTooManyKeysRefuseTheFile() throws {
    var broken = try self.jwk(self.otherKey)
    broken["x"] = "AAAA"
    #expect {
      try BundleDocument(parsing: try self.document([broken]), now: Fixtures.now)
    } throws: { error in
      let error = error as! BundleDocumentError
      return error.reason == .unparsable && error.message.contains("key 1") && error.message.contains("x and y")
    }
    let many = try (0...BundleDocument.maximumJWTKeys).map { _ in try self.jwk(JWTSigningKey()) }
    #expect {
      try BundleDocument(parsing: try self.document(many), now: Fixtures.now)
    } throws: { error in
      (error as! BundleDocumentError).message.contains("at most \(BundleDocument.maximumJWTKeys)")
    }
  }

  @Test func aFederatedDomainsTokenValidatesAgainstItsJWTKeys() throws {
    let validator = self.bundles(federated: [self.otherKey.publicKey]).validator
    let validated = try validator.validate(
      try self.token(self.otherKey, "spiffe://other.example/payments"), audience: "backend", now: Fixtures.now)
    #expect(validated.spiffeID.description == "spiffe://other.example/payments")
    // The own domain's key does not vouch for the other domain, nor the other's for the own.
    #expect {
      try validator.validate(
        try self.token(self.ownKey, "spiffe://other.example/payments"), audience: "backend", now: Fixtures.now)
    } throws: { ($0 as? JWTSVIDFailure)?.code == .unknownKey }
    #expect {
      try validator.validate(
        try self.token(self.otherKey, Fixtures.identity.description), audience: "backend", now: Fixtures.now)
    } throws: { ($0 as? JWTSVIDFailure)?.code == .unknownKey }
  }

  @Test func aFederatedDomainWithoutJWTKeysIsStillRefused() throws {
    let set = self.bundles(federated: [])
    #expect(set.bundles.map(\.trustDomain) == [TrustDomainName(of: Fixtures.identity)])
    #expect {
      try set.validator.validate(
        try self.token(self.otherKey, "spiffe://other.example/payments"), audience: "backend", now: Fixtures.now)
    } throws: { error in
      let failure = error as? JWTSVIDFailure
      return failure?.code == .unknownTrustDomain && failure?.message.contains("other.example") == true
    }
  }
}
