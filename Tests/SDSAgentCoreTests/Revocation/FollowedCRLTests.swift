import Foundation
import SDSAgentCore
import Testing
import X509

@Suite struct FollowedCRLTests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let ca = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(timeIntervalSince1970: 1_800_000_000))

  func crl(number: Int, signedBy signer: CAMaterial? = nil, from start: TimeInterval = 0, hours: Double = 4)
    throws -> CertificateRevocationList
  {
    let signer = signer ?? self.ca
    return try CertificateRevocationList(
      issuer: signer.certificate, issuerKey: signer.privateKey, number: number, entries: [],
      thisUpdate: self.now + start, nextUpdate: self.now + start + hours * 3600)
  }

  @Test func aNewerVerifiedCRLReplacesTheHeldOneAndAnOlderNever() throws {
    var followed = FollowedCRL()
    #expect(
      followed.offer(try self.crl(number: 5), issuers: [self.ca.certificate], now: self.now) == .accepted(number: 5))
    let same = try #require(followed.held)
    #expect(followed.offer(same, issuers: [self.ca.certificate], now: self.now) == .unchanged)
    #expect(
      followed.offer(try self.crl(number: 4), issuers: [self.ca.certificate], now: self.now)
        == .older(number: 4, held: 5))
    #expect(
      followed.offer(try self.crl(number: 6), issuers: [self.ca.certificate], now: self.now) == .accepted(number: 6))
    #expect(followed.held?.number == 6)
  }

  @Test func aCRLNoIssuerSignedIsRefusedAndTheLastGoodKept() throws {
    let stranger = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    var followed = FollowedCRL()
    _ = followed.offer(try self.crl(number: 1), issuers: [self.ca.certificate], now: self.now)
    #expect(
      followed.offer(try self.crl(number: 9, signedBy: stranger), issuers: [self.ca.certificate], now: self.now)
        == .unverified)
    #expect(followed.held?.number == 1)
  }

  @Test func anExpiredCRLIsNeverTakenAndNeverServed() throws {
    var followed = FollowedCRL()
    let stale = try self.crl(number: 3, from: -5 * 3600)
    #expect(
      followed.offer(stale, issuers: [self.ca.certificate], now: self.now) == .expired(nextUpdate: stale.nextUpdate))
    _ = followed.offer(try self.crl(number: 4), issuers: [self.ca.certificate], now: self.now)
    #expect(followed.servable(at: self.now + 4 * 3600 - 1)?.number == 4)
    #expect(followed.servable(at: self.now + 4 * 3600) == nil)
  }

  @Test func refetchIsHalfwayWithJitterAndSoonerWhenLate() throws {
    var followed = FollowedCRL()
    #expect(followed.refetch(at: self.now, jitterSample: 0, retry: .seconds(30)) == self.now + 30)
    _ = followed.offer(try self.crl(number: 1), issuers: [self.ca.certificate], now: self.now)
    #expect(followed.refetch(at: self.now, jitterSample: 0, retry: .seconds(30)) == self.now + 2 * 3600)
    #expect(followed.refetch(at: self.now, jitterSample: 1, retry: .seconds(30)) == self.now + 2.4 * 3600)
    #expect(followed.refetch(at: self.now, jitterSample: -1, retry: .seconds(30)) == self.now + 1.6 * 3600)
    let late = self.now + 3 * 3600
    #expect(followed.refetch(at: late, jitterSample: 0, retry: .seconds(30)) == late + 30)
  }

  @Test func theCASignsAgainOnChangeAndHalfwayThroughValidity() throws {
    let schedule = CRLSchedule(validity: .seconds(4 * 3600))
    #expect(schedule.decision(held: nil, revocationsChanged: false, now: self.now) == .signNow)
    let held = try self.crl(number: 1)
    #expect(schedule.decision(held: held, revocationsChanged: true, now: self.now) == .signNow)
    #expect(schedule.decision(held: held, revocationsChanged: false, now: self.now) == .sign(at: self.now + 2 * 3600))
    #expect(schedule.decision(held: held, revocationsChanged: false, now: self.now + 2 * 3600) == .signNow)
    #expect(schedule.window(now: self.now) == (self.now, self.now + 4 * 3600))
  }
}
