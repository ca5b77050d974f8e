import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

/// The ledger signs each issuer's list when it has none, when the revocations change and halfway
/// through a list's validity, and a certificate is revoked in every list; the embedded CA serves
/// nothing its record could not keep.
@Suite struct RevocationLedgerTests {
  let now = Date()
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let schedule = CRLSchedule(validity: .seconds(4 * 3600))

  func issuer() throws -> (CAMaterial, CRLIssuer) {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    return (ca, CRLIssuer(certificate: ca.certificate, key: ca.privateKey))
  }

  func leaf(from ca: CAMaterial) throws -> Certificate {
    try LocalCA(material: ca).certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(3600), now: self.now
    ).certifiedKey.leaf
  }

  @Test func listsAreSignedOnceAndAgainOnlyWhenDue() throws {
    let (_, signing) = try self.issuer()
    var ledger = RevocationLedger(schedule: self.schedule)
    let first = try ledger.lists(of: [signing], at: self.now)
    #expect(first.lists.map(\.number) == [1])
    #expect(first.lists[0].isSigned(by: signing.certificate))
    // CRL times are whole seconds.
    #expect(abs(first.nextSigning.timeIntervalSince(self.now.addingTimeInterval(2 * 3600))) < 1)
    let held = try ledger.lists(of: [signing], at: self.now.addingTimeInterval(3600))
    #expect(held.lists == first.lists)
    let due = try ledger.lists(of: [signing], at: self.now.addingTimeInterval(2 * 3600))
    #expect(due.lists.map(\.number) == [2])
    #expect(ledger.revocations.crlNumber == 2)
  }

  @Test func aRevocationIsInEveryIssuersNextList() throws {
    let (ca, signing) = try self.issuer()
    let (_, previous) = try self.issuer()
    let leaf = try self.leaf(from: ca)
    var ledger = RevocationLedger(schedule: self.schedule)
    ledger.record(
      IssuedCertificate(
        serial: CertificateSerial(leaf.serialNumber), identity: self.identity, notAfter: leaf.notValidAfter),
      at: self.now)
    let before = try ledger.lists(of: [signing, previous], at: self.now)
    #expect(before.lists.allSatisfy { !$0.revokes(CertificateSerial(leaf.serialNumber)) })
    let outcome = ledger.revoke(.identity(self.identity), reason: .keyCompromise, at: self.now)
    guard case .revoked(let entries) = outcome else {
      Issue.record("not revoked: \(outcome)")
      return
    }
    #expect(entries.map(\.serial) == [CertificateSerial(leaf.serialNumber)])
    let after = try ledger.lists(of: [signing, previous], at: self.now.addingTimeInterval(1))
    #expect(after.lists.count == 2)
    #expect(after.lists.allSatisfy { $0.revokes(CertificateSerial(leaf.serialNumber)) })
    #expect(zip(after.lists, [signing, previous]).allSatisfy { $0.isSigned(by: $1.certificate) })
    #expect(Set(after.lists.map(\.number)).count == 2 && after.lists.allSatisfy { $0.number > 2 })
  }

  @Test func anExpiredRevocationLeavesTheListOnTheNextSigning() throws {
    let (ca, signing) = try self.issuer()
    let leaf = try self.leaf(from: ca)
    var ledger = RevocationLedger(schedule: self.schedule)
    ledger.record(
      IssuedCertificate(
        serial: CertificateSerial(leaf.serialNumber), identity: self.identity, notAfter: leaf.notValidAfter),
      at: self.now)
    _ = ledger.revoke(.serial(CertificateSerial(leaf.serialNumber)), reason: .superseded, at: self.now)
    let revoked = try ledger.lists(of: [signing], at: self.now)
    #expect(revoked.lists[0].revokes(CertificateSerial(leaf.serialNumber)))
    let expiry = leaf.notValidAfter.addingTimeInterval(1)
    let dropped = ledger.prune(at: expiry)
    #expect(dropped)
    #expect(ledger.issued.count == 0)
    let pruned = try ledger.lists(of: [signing], at: expiry)
    #expect(pruned.lists[0].entries.isEmpty)
  }

  @Test func theEmbeddedCAServesOnlyWhatItsRecordKept() async throws {
    let (material, _) = try self.issuer()
    let record = MemoryIssuanceRecord()
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: material), record: record)
    let issued = try await ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(600), now: self.now,
      credential: .agent)
    #expect(
      record.rows == [
        IssuedCertificate(
          serial: CertificateSerial(issued.certifiedKey.leaf.serialNumber), identity: self.identity,
          notAfter: issued.certifiedKey.leaf.notValidAfter)
      ])
    record.fails = true
    await #expect(throws: CertificateAuthorityError.self) {
      try await ca.certify(
        identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(600),
        now: self.now, credential: .agent)
    }
    #expect(record.rows.count == 1)
  }
}

/// An issuance record in memory that can be made to fail, as a full disk would.
final class MemoryIssuanceRecord: IssuanceRecord {
  private let state = Mutex<(rows: [IssuedCertificate], fails: Bool)>(([], false))

  var rows: [IssuedCertificate] { self.state.withLock { $0.rows } }
  var fails: Bool {
    get { self.state.withLock { $0.fails } }
    set { self.state.withLock { $0.fails = newValue } }
  }

  func record(_ certificate: IssuedCertificate) throws(CertificateAuthorityError) {
    try self.state.withLock { state throws(CertificateAuthorityError) in
      guard !state.fails else { throw CertificateAuthorityError(.signingFailed, "the record cannot be written") }
      state.rows.append(certificate)
    }
  }
}
