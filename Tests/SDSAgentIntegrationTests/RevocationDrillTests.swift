import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// `sds-agent drill --revoke` against live agents: it passes against an agent with an embedded CA
/// (new serial, new key, the list naming the old serial, all on its open streams), and fails,
/// saying why, when the admin endpoint is another agent's or when no list arrives in time; with an
/// operator intermediate it passes on the list the intermediate signs.
@Suite(.timeLimit(.minutes(1))) struct RevocationDrillTests {
  func configuration(
    admin: AgentConfiguration.AdminAddress, caSource: AgentConfiguration.CASource = .generated
  ) throws -> AgentConfiguration {
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    builder.caSource = caSource
    return try builder.build()
  }

  @Test func theDrillPassesAgainstALiveAgent() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    try await RunningAgent.with(try self.configuration(admin: admin)) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin).run()
      #expect(report.passed, "\(report.text)")
      let new = try #require(report.newSerial)
      #expect(new != report.oldSerial)
      #expect(report.answered != nil && report.certificateArrived != nil && report.listsArrived != nil)
      let old = try #require(CertificateSerial(hex: report.oldSerial))
      let lists = running.agent.identities.servedRevocationLists
      #expect(!lists.isEmpty && lists.allSatisfy { $0.revokes(old) })
      #expect(report.listNumbers == lists.map(\.number))
      #expect(report.text.hasPrefix("revocation drill: PASSED"))
      print(report.text)
    }
  }

  @Test func theDrillFailsWhenTheAdminEndpointIsAnotherAgents() async throws {
    let adminB = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    try await RunningAgent.with { a in
      try await RunningAgent.with(try self.configuration(admin: adminB)) { b in
        await b.agent.waitForAdminEndpoint()
        // Agent B never signed the certificate agent A serves on the drill's stream.
        let report = try await RevocationDrill(socketPath: a.socketPath, admin: adminB, timeout: .seconds(5)).run()
        #expect(!report.passed)
        #expect(report.failures.contains { $0.contains("POST /ca/revoke answered 404") }, "\(report.text)")
        #expect(a.agent.identities.servedRevocationLists.allSatisfy { $0.entries.isEmpty })
      }
    }
  }

  /// The operator's CA files for `operatorCA`'s intermediate, in a new directory.
  func files(_ operatorCA: OperatorIntermediate) throws -> (AgentConfiguration.CASource, directory: String) {
    let directory = TemporaryDirectory.make()
    let (certificate, key, chain) = (directory + "/ca-cert.pem", directory + "/ca-key.pem", directory + "/ca-chain.pem")
    try operatorCA.material.certificate.serializeAsPEM().pemString.write(
      toFile: certificate, atomically: false, encoding: .utf8)
    try operatorCA.material.privateKey.serializeAsPEM().pemString.write(toFile: key, atomically: false, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
    try operatorCA.root.certificate.serializeAsPEM().pemString.write(toFile: chain, atomically: false, encoding: .utf8)
    return (.files(certificate: certificate, key: key, chain: chain), directory)
  }

  @Test func theDrillPassesWithAnOperatorIntermediate() async throws {
    // The intermediate signs the leaves' list, served in ROOTCA.
    let (source, directory) = try self.files(try OperatorIntermediate(now: Date()))
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: directory + "/admin.sock")
    try await RunningAgent.with(try self.configuration(admin: admin, caSource: source)) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin).run()
      #expect(report.passed, "\(report.text)")
    }
  }

  @Test func theDrillFailsWhenNoListArrivesInTime() async throws {
    // An operator intermediate that may not sign lists (no cRLSign): revocations are recorded and
    // the holder is re-issued, but no list is served (Envoy would refuse every certificate).
    let (source, directory) = try self.files(try OperatorIntermediate(now: Date(), crlSign: false))
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: directory + "/admin.sock")
    try await RunningAgent.with(try self.configuration(admin: admin, caSource: source)) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin, timeout: .seconds(3)).run()
      #expect(!report.passed)
      #expect(report.answered != nil && report.certificateArrived != nil && report.listsArrived == nil)
      #expect(report.failures.count == 1, "\(report.text)")
      #expect(report.failures.first?.contains("no ROOTCA whose revocation lists name") == true, "\(report.text)")
    }
  }

  @Test func noListIsServedThroughAnIntermediateWhenTheOperatorSaysSo() async throws {
    // intermediate-crl false (one intermediate per node): revocations are recorded and the holder
    // re-issued, but the intermediate's list is neither served nor listed.
    let (source, directory) = try self.files(try OperatorIntermediate(now: Date()))
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: directory + "/admin.sock")
    var configuration = try self.configuration(admin: admin, caSource: source)
    configuration.intermediateCRL = false
    try await RunningAgent.with(configuration) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RevocationDrill(socketPath: running.socketPath, admin: admin, timeout: .seconds(3)).run()
      #expect(!report.passed)
      #expect(report.answered != nil && report.certificateArrived != nil && report.listsArrived == nil)
      #expect(running.agent.identities.servedRevocationLists.isEmpty)
    }
  }
}
