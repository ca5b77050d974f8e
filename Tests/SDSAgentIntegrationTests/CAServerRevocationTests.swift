import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// `ca serve`'s revocation routes, driven directly: what its CA signed can be revoked by serial,
/// and `GET /ca/crl` answers its root's list naming it; it has no identity of its own to re-issue.
@Suite struct CAServerRevocationTests {
  let root: CAMaterial
  let ca: EmbeddedCA
  let routes: CAServerAdminRoutes

  init() throws {
    self.root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let record = try RevocationStore.open(
      stateDirectory: TemporaryDirectory.make() + "/state", validity: .seconds(3600))
    self.ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.root), record: record)
    let host = CAServerRevocationHost()
    let service = RevocationService(
      ca: self.ca, record: record, host: host, clock: ContinuousClock(), now: { Date() },
      logger: Logger(label: "test"))
    service.publish()
    self.routes = CAServerAdminRoutes(
      trust: TrustRoutes(rotation: nil, ca: self.ca, trustDomain: "cluster.local", notRotatable: "operator CA files"),
      revocation: RevocationRoutes(service: service, host: host, notRevocable: nil))
  }

  func crl() async throws -> CertificateRevocationList {
    let response = await self.routes.respond(method: "GET", target: "/ca/crl")
    #expect(response.status == 200)
    return try CertificateRevocationList(pemEncoded: response.body)
  }

  @Test func aLeafItSignedIsRevokedAndListed() async throws {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
    let (chain, _) = try await self.ca.sign(
      publicKey: try WorkloadKeyType.ecdsaP256.generate().publicKey, identity: identity, ttl: .seconds(600),
      now: Date())
    let serial = CertificateSerial(chain[0].serialNumber)
    #expect(try await self.crl().entries.isEmpty)
    let response = await self.routes.respond(
      method: "POST", target: "/ca/revoke", body: Array(#"{"serial": "\#(serial)", "reason": "superseded"}"#.utf8))
    #expect(response.status == 200)
    let revoked = try AdminAPI.decoder.decode(AdminAPI.Revoked.self, from: Data(response.body.utf8))
    #expect(revoked.serials == [serial.description] && revoked.reissued.isEmpty)
    let list = try await self.crl()
    #expect(list.isSigned(by: self.root.certificate) && list.revokes(serial))
  }

  @Test func anUnknownSerialIsNotFound() async throws {
    let response = await self.routes.respond(
      method: "POST", target: "/ca/revoke", body: Array(#"{"serial": "0badc0de"}"#.utf8))
    #expect(response.status == 404)
    #expect(try await self.crl().entries.isEmpty)
  }
}
