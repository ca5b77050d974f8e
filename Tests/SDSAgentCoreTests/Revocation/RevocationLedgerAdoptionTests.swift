import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// Revocations another writer recorded (a `ca serve` replica sharing its datastore) are adopted:
/// the next lists carry them though this ledger never signed the certificate, and CRL numbers
/// keep increasing here whatever number the other writer reached.
@Suite struct RevocationLedgerAdoptionTests {
  let now = Date()
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let schedule = CRLSchedule(validity: .seconds(4 * 3600))

  func sharedRevocation(of serial: CertificateSerial, crlNumber: Int) -> Revocations {
    var issued = IssuedCertificates()
    issued.record(
      IssuedCertificate(serial: serial, identity: self.identity, notAfter: self.now.addingTimeInterval(30 * 86400)),
      at: self.now)
    var shared = Revocations(crlNumber: crlNumber)
    _ = shared.revoke(.serial(serial), reason: .keyCompromise, issued: issued, at: self.now)
    return shared
  }

  @Test func anAdoptedRevocationIsInTheNextListAndNumbersKeepIncreasing() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let signing = CRLIssuer(certificate: ca.certificate, key: ca.privateKey)
    var ledger = RevocationLedger(schedule: self.schedule)
    for _ in 0..<3 {
      _ = try ledger.lists(
        of: [signing], at: self.now.addingTimeInterval(2 * 3600 * Double(ledger.revocations.crlNumber)))
    }
    #expect(ledger.revocations.crlNumber == 3)
    let serial = CertificateSerial(hex: "0abc")!
    ledger.adopt(self.sharedRevocation(of: serial, crlNumber: 1))
    #expect(ledger.revocations.entries.map(\.serial) == [serial])
    #expect(ledger.revocations.crlNumber == 3)
    let after = try ledger.lists(of: [signing], at: self.now.addingTimeInterval(4 * 3600 + 1))
    #expect(after.lists.count == 1 && after.lists[0].revokes(serial))
    #expect(after.lists[0].number == 4)
  }

  @Test func adoptingTheSameRevocationsAgainSignsNothingNew() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let signing = CRLIssuer(certificate: ca.certificate, key: ca.privateKey)
    var ledger = RevocationLedger(schedule: self.schedule)
    let shared = self.sharedRevocation(of: CertificateSerial(hex: "01")!, crlNumber: 7)
    ledger.adopt(shared)
    #expect(ledger.revocations.crlNumber == 7)
    let first = try ledger.lists(of: [signing], at: self.now)
    ledger.adopt(shared)
    let second = try ledger.lists(of: [signing], at: self.now.addingTimeInterval(60))
    #expect(second.lists == first.lists)
    #expect(first.lists[0].number == 8)
  }
}
