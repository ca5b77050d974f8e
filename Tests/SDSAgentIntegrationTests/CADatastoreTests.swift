import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The datastore's transactions on a real PostgreSQL: replicas load the one root, a wrong
/// key-encryption key and a newer schema are refused, each rotation step is taken once whichever
/// replica takes it, and a revocation is resolved against every replica's certificates.
@Suite(.serialized, .enabled(if: TemporaryPostgreSQL.isInstalled), .timeLimit(.minutes(2)))
struct CADatastoreTests {
  let key = try! KeyEncryptionKey(bytes: Array(repeating: 3, count: 32))

  func replica(_ name: String, _ server: TemporaryPostgreSQL, key: KeyEncryptionKey? = nil) throws -> CADatastore {
    CADatastore(
      address: try DatastoreAddress(parsing: server.url(database: "ca")), keyEncryptionKey: key ?? self.key,
      replicaName: name, logger: Logger(label: "test"))
  }

  func bootstrap(_ datastore: CADatastore) async throws -> SharedCAState {
    try await datastore.bootstrap(
      source: .generated, stateDirectory: TemporaryDirectory.make(), trustDomain: "cluster.local", now: Date())
  }

  func withServer(_ body: (TemporaryPostgreSQL) async throws -> Void) async throws {
    let server = try TemporaryPostgreSQL()
    defer { server.stop() }
    try server.psql("CREATE DATABASE ca")
    try await body(server)
  }

  @Test func replicasLoadOneRootAndAWrongKeyOrANewerSchemaIsRefused() async throws {
    try await self.withServer { server in
      let first = try await self.bootstrap(try self.replica("a", server))
      let second = try await self.bootstrap(try self.replica("b", server))
      #expect(second.roots.signing.certificate == first.roots.signing.certificate)
      #expect(second.roots.signing.privateKey.publicKey == first.roots.signing.privateKey.publicKey)
      let other = try KeyEncryptionKey(bytes: Array(repeating: 4, count: 32))
      await #expect {
        _ = try await self.bootstrap(try self.replica("c", server, key: other))
      } throws: { ($0 as? DatastoreError)?.code == .wrongKeyEncryptionKey }
      try server.psql("INSERT INTO sds_agent_schema (version, applied_by) VALUES (99, 'later')", database: "ca")
      await #expect {
        _ = try await self.bootstrap(try self.replica("a", server))
      } throws: { ($0 as? DatastoreError)?.code == .newerSchema }
    }
  }

  @Test func eachRotationStepIsTakenOnceWhicheverReplicaTakesIt() async throws {
    try await self.withServer { server in
      let a = try self.replica("a", server)
      let b = try self.replica("b", server)
      let old = try await self.bootstrap(a).roots.signing
      let next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "next")
      var rotation = RootRotation(
        preparedAt: Date(), overlap: .seconds(10), previousRootSerial: old.certificate.serialHex,
        nextRootSerial: next.certificate.serialHex)
      try a.prepare(rotation, next: next)
      let another = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "another")
      #expect(throws: RootRotationError.self) { try b.prepare(rotation, next: another) }
      let prepared = try #require(try await b.reading { try await b.state($0) })
      #expect(prepared.roots.next?.certificate == next.certificate)
      #expect(try prepared.rotation()?.phase == .prepared)

      rotation.switched(at: Date(), lastOldLeafExpiry: Date().addingTimeInterval(5))
      try a.switchRoot(rotation)
      try b.switchRoot(rotation)
      let switched = try #require(try await b.reading { try await b.state($0) })
      #expect(switched.roots.signing.certificate == next.certificate)
      #expect(switched.roots.previous == old.certificate && switched.roots.next == nil)
      #expect(try switched.rotation()?.phase == .switched)

      try b.retire()
      try a.retire()
      let retired = try #require(try await a.reading { try await a.state($0) })
      #expect(retired.roots.signing.certificate == next.certificate)
      #expect(retired.roots.previous == nil && retired.rotationRecord == nil)
    }
  }

  @Test func aRevocationIsResolvedAgainstEveryReplicasCertificates() async throws {
    try await self.withServer { server in
      let a = try self.replica("a", server)
      let b = try self.replica("b", server)
      _ = try await self.bootstrap(a)
      let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
      let signedByB = IssuedCertificate(
        serial: CertificateSerial(hex: "0b0b")!, identity: identity, notAfter: Date().addingTimeInterval(3600))
      try await b.reading { try await b.upload([signedByB], $0) }
      let signedByA = IssuedCertificate(
        serial: CertificateSerial(hex: "0a0a")!, identity: identity, notAfter: Date().addingTimeInterval(3600))
      let (outcome, shared) = try a.revoke(
        .identity(identity), reason: .keyCompromise, at: Date(), pending: [signedByA])
      guard case .revoked(let entries) = outcome else {
        Issue.record("not revoked: \(outcome)")
        return
      }
      #expect(Set(entries.map(\.serial)) == [signedByA.serial, signedByB.serial])
      #expect(shared.entries.count == 2)
      let again = try b.revoke(.serial(signedByB.serial), reason: .keyCompromise, at: Date(), pending: [])
      #expect(again.outcome == .alreadyRevoked([signedByB.serial]))
      #expect(
        try server.psql("SELECT count(*) FROM sds_agent_issued", database: "ca").trimmingCharacters(
          in: .whitespacesAndNewlines) == "2")
    }
  }
}
