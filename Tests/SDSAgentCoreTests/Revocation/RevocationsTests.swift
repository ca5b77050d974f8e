import Foundation
import SDSAgentCore
import Testing

@Suite struct RevocationsTests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let backend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/backend")

  func row(_ hex: String, _ identity: SPIFFEID, expiresIn seconds: TimeInterval) -> IssuedCertificate {
    IssuedCertificate(serial: CertificateSerial(hex: hex)!, identity: identity, notAfter: self.now + seconds)
  }

  var issued: IssuedCertificates {
    var issued = IssuedCertificates()
    for row in [
      self.row("01", self.frontend, expiresIn: 3600), self.row("02", self.frontend, expiresIn: 7200),
      self.row("03", self.backend, expiresIn: 3600), self.row("04", self.backend, expiresIn: -1),
    ] {
      issued.record(row, at: self.now - 7200)
    }
    return issued
  }

  @Test func aSerialIsRevokedOnceWithItsReasonAndExpiry() throws {
    var revocations = Revocations()
    let outcome = revocations.revoke(
      .serial(CertificateSerial(hex: "0001")!), reason: .keyCompromise, issued: self.issued, at: self.now)
    let expected = RevokedCertificate(
      serial: CertificateSerial(hex: "01")!, revokedAt: self.now, reason: .keyCompromise, notAfter: self.now + 3600)
    #expect(outcome == .revoked([expected]))
    #expect(
      revocations.revoke(.serial(CertificateSerial(hex: "01")!), reason: .superseded, issued: self.issued, at: self.now)
        == .alreadyRevoked([CertificateSerial(hex: "01")!]))
    #expect(revocations.entries == [expected])
  }

  @Test func anIdentityRevokesEachOfItsUnexpiredCertificates() {
    var revocations = Revocations()
    guard
      case .revoked(let entries) = revocations.revoke(
        .identity(self.frontend), reason: .unspecified, issued: self.issued, at: self.now)
    else {
      Issue.record("not revoked")
      return
    }
    #expect(entries.map(\.serial.description) == ["01", "02"])
    #expect(
      revocations.revoke(.identity(self.backend), reason: .unspecified, issued: self.issued, at: self.now + 3601)
        == .noCertificates(self.backend))
  }

  @Test func unknownAndExpiredSerialsChangeNothing() {
    var revocations = Revocations()
    let unknown = CertificateSerial(hex: "99")!
    #expect(
      revocations.revoke(.serial(unknown), reason: .unspecified, issued: self.issued, at: self.now)
        == .unknownSerial(unknown))
    let expired = CertificateSerial(hex: "04")!
    #expect(
      revocations.revoke(.serial(expired), reason: .unspecified, issued: self.issued, at: self.now)
        == .expired(expired, notAfter: self.now - 1))
    #expect(revocations.entries.isEmpty)
  }

  @Test func entriesLeaveOnceTheirCertificateExpired() {
    var revocations = Revocations()
    _ = revocations.revoke(.identity(self.frontend), reason: .unspecified, issued: self.issued, at: self.now)
    let early = revocations.prune(at: self.now + 3599)
    #expect(!early)
    let due = revocations.prune(at: self.now + 3600)
    #expect(due)
    #expect(revocations.entries.map(\.serial.description) == ["02"])
  }

  @Test func crlNumbersOnlyGrowAndSurviveEncoding() throws {
    var revocations = Revocations()
    #expect(revocations.nextCRLNumber() == 1)
    #expect(revocations.nextCRLNumber() == 2)
    _ = revocations.revoke(
      .serial(CertificateSerial(hex: "02")!), reason: .keyCompromise, issued: self.issued, at: self.now)
    let decoded = try JSONDecoder().decode(Revocations.self, from: try JSONEncoder().encode(revocations))
    #expect(decoded == revocations)
    var next = decoded
    let number = next.nextCRLNumber()
    #expect(number == 3)
  }

  @Test func theRecordIsBoundedAndDropsExpiredRowsFirst() {
    var issued = IssuedCertificates(capacity: 3)
    issued.record(self.row("01", self.frontend, expiresIn: -10), at: self.now)
    issued.record(self.row("02", self.frontend, expiresIn: 100), at: self.now)
    issued.record(self.row("03", self.frontend, expiresIn: 300), at: self.now)
    issued.record(self.row("04", self.frontend, expiresIn: 200), at: self.now)
    #expect(issued.rows.map(\.serial.description) == ["02", "03", "04"])
    #expect(issued.evicted == 0)
    issued.record(self.row("05", self.frontend, expiresIn: 400), at: self.now)
    #expect(issued.rows.map(\.serial.description) == ["03", "04", "05"])
    #expect(issued.evicted == 1)
    let pruned = issued.prune(at: self.now + 250)
    #expect(pruned == 1)
    #expect(issued.count == 2)
  }
}
