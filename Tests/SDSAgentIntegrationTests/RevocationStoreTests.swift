import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The ledger in the state directory: what was recorded, revoked and numbered is there after a
/// restart, and a write that fails leaves the ledger as it was.
@Suite struct RevocationStoreTests {
  let now = Date()
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let directory = TemporaryDirectory.make()
  let schedule = CRLSchedule(validity: .seconds(3600))

  func store(in directory: String? = nil) throws -> RevocationStore {
    try RevocationStore(
      files: RevocationFiles(stateDirectory: directory ?? self.directory), schedule: self.schedule, now: self.now)
  }

  @Test func aRecordedCertificateRevokedAndListedSurvivesARestart() async throws {
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let issuer = CRLIssuer(certificate: material.certificate, key: material.privateKey)
    let store = try self.store()
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: material), record: store)
    let issued = try await ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(600), now: self.now,
      credential: .agent)
    let serial = CertificateSerial(issued.certifiedKey.leaf.serialNumber)
    guard case .revoked = try store.revoke(.serial(serial), reason: .keyCompromise, at: self.now) else {
      Issue.record("not revoked")
      return
    }
    let first = try store.lists(of: [issuer], at: self.now)
    #expect(first.lists.first?.revokes(serial) == true)

    let restarted = try self.store()
    #expect(restarted.issued.row(serial: serial)?.identity == self.identity)
    #expect(restarted.revocations.isRevoked(serial))
    let again = try restarted.lists(of: [issuer], at: self.now)
    #expect(again.lists.first?.revokes(serial) == true)
    #expect(again.lists[0].number > first.lists[0].number)
  }

  @Test func aRecordThatCannotBeWrittenIsRefusedAndNotKept() async throws {
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let store = try self.store(in: self.directory + "/missing")
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: material), record: store)
    await #expect(throws: CertificateAuthorityError.self) {
      try await ca.certify(
        identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(600),
        now: self.now, credential: .agent)
    }
    #expect(store.issued.count == 0)
  }

  @Test func aRevocationThatCannotBeWrittenChangesNothing() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    let serial = CertificateSerial(hex: "0a")!
    try files.append(IssuedCertificate(serial: serial, identity: self.identity, notAfter: self.now + 600))
    let store = try self.store()
    try FileManager.default.removeItem(atPath: self.directory)
    #expect(throws: AgentError.self) { try store.revoke(.serial(serial), reason: .unspecified, at: self.now) }
    #expect(!store.revocations.isRevoked(serial))
  }
}
