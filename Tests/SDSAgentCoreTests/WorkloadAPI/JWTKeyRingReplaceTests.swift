import Foundation
import SDSAgentCore
import Testing

/// `JWTKeyRing.replace`: the keys another writer decided are published, and a key this ring signed
/// or kept stays published until the last token it signed has expired.
@Suite struct JWTKeyRingReplaceTests {
  let domain = try! TrustDomainName(parsing: "cluster.local")
  let now = Date(timeIntervalSince1970: 1_800_000_000)

  @Test func theKeysOfAnotherWriterArePublished() {
    let (old, next) = (JWTSigningKey(), JWTSigningKey())
    let ring = JWTKeyRing(JWTSigningKeys(signing: old), trustDomain: self.domain, ttl: .seconds(300))
    ring.replace(JWTSigningKeys(signing: old, next: next), at: self.now)
    #expect(ring.current.next?.kid == next.kid)
    #expect(ring.bundle.keys.map(\.kid) == [old.kid, next.kid])
  }

  @Test func aKeyThatSignedHereStaysUntilItsLastTokenExpires() {
    let (old, next, later) = (JWTSigningKey(), JWTSigningKey(), JWTSigningKey())
    let ring = JWTKeyRing(JWTSigningKeys(signing: old), trustDomain: self.domain, ttl: .seconds(300))
    // The switch and the next rotation's prepare, followed late: the old key is not in them.
    ring.replace(JWTSigningKeys(signing: next, next: later), at: self.now)
    #expect(ring.current.signing.kid == next.kid)
    #expect(ring.current.retiring.map(\.key.kid) == [old.kid])
    #expect(ring.current.retiring.first?.retireAt == self.now.addingTimeInterval(300))
    // Retired early by the other writer: kept until its own retirement.
    ring.replace(JWTSigningKeys(signing: next, next: later), at: self.now.addingTimeInterval(10))
    #expect(ring.current.retiring.map(\.key.kid) == [old.kid])
    ring.replace(JWTSigningKeys(signing: next, next: later), at: self.now.addingTimeInterval(301))
    #expect(ring.current.retiring.isEmpty)
  }

  @Test func theLaterOfTwoRetirementsIsKept() {
    let (old, next) = (JWTSigningKey(), JWTSigningKey())
    let early = JWTSigningKeys.Retiring(
      key: old.publicKey, retireAt: self.now.addingTimeInterval(60), replacedBy: next.kid)
    let late = JWTSigningKeys.Retiring(
      key: old.publicKey, retireAt: self.now.addingTimeInterval(600), replacedBy: next.kid)
    let ring = JWTKeyRing(
      JWTSigningKeys(signing: next, retiring: [late]), trustDomain: self.domain, ttl: .seconds(300))
    ring.replace(JWTSigningKeys(signing: next, retiring: [early]), at: self.now)
    #expect(ring.current.retiring == [late])
  }
}
