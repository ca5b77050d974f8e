import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `POST /ca/revoke` and `GET /ca/crl` on the agent's admin socket, with its embedded CA: a
/// revocation answers the serials revoked, re-issues the holder and is in the list served; a
/// malformed or unknown request is refused and changes nothing.
@Suite(.timeLimit(.minutes(1))) struct RevocationRoutesTests {
  func withAgent(
    _ body: (RunningAgent, AgentConfiguration.AdminAddress) async throws -> Void
  ) async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      try await body(running, admin)
    }
  }

  func crl(at admin: AgentConfiguration.AdminAddress) async throws -> CertificateRevocationList {
    let response = try await AdminClient.request("GET", "/ca/crl", at: admin)
    #expect(response.status == 200)
    return try CertificateRevocationList(pemEncoded: response.body)
  }

  func revoke(_ json: String, at admin: AgentConfiguration.AdminAddress) async throws -> AdminClient.Response {
    try await AdminClient.request("POST", "/ca/revoke", at: admin, body: Array(json.utf8))
  }

  @Test func theCRLIsSignedByTheRootAndRevokesNothingAtFirst() async throws {
    try await self.withAgent { running, admin in
      let list = try await self.crl(at: admin)
      let root = try #require(running.agent.identities.installedTrustBundle?.roots.first)
      #expect(list.isSigned(by: root))
      #expect(list.entries.isEmpty)
      #expect(list.nextUpdate.timeIntervalSince(list.thisUpdate) == 4 * 3600)
    }
  }

  @Test func aRevokedSerialIsListedAndItsHolderGetsANewKey() async throws {
    try await self.withAgent { running, admin in
      let old = try #require(running.agent.cache.current.svid)
      let serial = CertificateSerial(old.leaf.serialNumber)
      // As openssl x509 -serial prints it: upper case, with its prefix.
      let response = try await self.revoke(
        #"{"serial": "serial=\#(serial.description.uppercased())", "reason": "keyCompromise"}"#, at: admin)
      #expect(response.status == 200)
      let revoked = try response.decode(AdminAPI.Revoked.self)
      #expect(revoked.serials == [serial.description])
      #expect(revoked.reason == "key-compromise")
      #expect(revoked.reissued == [running.agent.identities.pinnedIdentity.description])
      let new = try #require(running.agent.cache.current.svid)
      #expect(new.leaf.serialNumber != old.leaf.serialNumber && new.leaf.publicKey != old.leaf.publicKey)
      let list = try await self.crl(at: admin)
      #expect(list.revokes(serial) && !list.revokes(CertificateSerial(new.leaf.serialNumber)))
      #expect(list.entries.first?.reason == .keyCompromise)
    }
  }

  @Test func revokingAnIdentityRevokesEachOfItsUnexpiredCertificates() async throws {
    try await self.withAgent { running, admin in
      let identity = running.agent.identities.pinnedIdentity
      let first = try #require(running.agent.cache.current.svid?.leaf.serialNumber)
      #expect(try await running.agent.identities.rotate(identity))
      let second = try #require(running.agent.cache.current.svid?.leaf.serialNumber)
      let response = try await self.revoke(#"{"identity": "\#(identity)"}"#, at: admin)
      #expect(response.status == 200)
      let revoked = try response.decode(AdminAPI.Revoked.self)
      #expect(Set(revoked.serials) == [CertificateSerial(first).description, CertificateSerial(second).description])
      let list = try await self.crl(at: admin)
      #expect(list.revokes(CertificateSerial(first)) && list.revokes(CertificateSerial(second)))
    }
  }

  @Test(arguments: [
    (#"{"serial": "zz"}"#, 400, "not a serial number"),
    (#"{"serial": "01", "identity": "spiffe://cluster.local/a"}"#, 400, "exactly one of serial and identity"),
    (#"{"serial": "01", "reason": "boredom"}"#, 400, "reason \"boredom\" is not one of"),
    ("not json", 400, "not a JSON object"),
    (#"{"serial": "0badc0de"}"#, 404, "unknown serial 0badc0de"),
    (#"{"identity": "spiffe://cluster.local/ns/x/sa/nobody"}"#, 404, "holds no unexpired certificate"),
  ])
  func aRefusedRequestSaysWhyAndChangesNothing(body: String, status: Int, message: String) async throws {
    try await self.withAgent { running, admin in
      let before = try await self.crl(at: admin)
      let serial = running.agent.cache.current.svid?.leaf.serialNumber
      let response = try await self.revoke(body, at: admin)
      #expect(response.status == status)
      #expect(response.body.contains(message), "\(response.body)")
      let after = try await self.crl(at: admin)
      #expect(after.number == before.number && after.entries.isEmpty)
      #expect(running.agent.cache.current.svid?.leaf.serialNumber == serial)
    }
  }

  @Test func onlyPostRevokesAndOnlyGetReadsTheList() async throws {
    try await self.withAgent { _, admin in
      let get = try await AdminClient.request("GET", "/ca/revoke", at: admin)
      let post = try await AdminClient.request("POST", "/ca/crl", at: admin)
      #expect(get.status == 405 && post.status == 405)
    }
  }
}
