import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import SwiftASN1
import Testing
import X509

@Suite struct CAStoreTests {
  @Test func aGeneratedRootIsKeptPrivatelyAndReloaded() throws {
    let directory = TemporaryDirectory.make() + "/state"
    let first = try CAStore.load(.generated, stateDirectory: directory, trustDomain: "example.org")
    #expect(try self.mode(directory) == 0o700)
    #expect(try self.mode(directory + "/ca-key.pem") == 0o600)
    #expect(first.certificate.isSelfSigned)
    let second = try CAStore.load(.generated, stateDirectory: directory, trustDomain: "example.org")
    #expect(second.certificate == first.certificate)
    #expect(second.trustBundle == first.trustBundle)
  }

  @Test func operatorFilesAreUsedAndTheirRootIsTheBundle() async throws {
    let directory = TemporaryDirectory.make()
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    try self.write(try root.certificate.pemString(), to: directory + "/root.pem", mode: 0o644)
    try self.write(try root.privateKey.serializeAsPEM().pemString, to: directory + "/root-key.pem", mode: 0o600)
    let source = AgentConfiguration.CASource.files(
      certificate: directory + "/root.pem", key: directory + "/root-key.pem", chain: nil)
    try await RunningAgent.with(try RunningAgent.configuration(caSource: source)) { running in
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["ROOTCA"])
      #expect(secrets.first?.certificates == [root.certificate])
    }
  }

  @Test func anOperatorIntermediateCAIsServedInTheChainAndItsRootAsROOTCA() async throws {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("certs-testdata").path
    let directory = TemporaryDirectory.make()
    // Git does not keep modes: give the key the 0600 the agent insists on.
    let key = try String(contentsOfFile: fixtures + "/intermediate-key.pem", encoding: .utf8)
    try self.write(key, to: directory + "/intermediate-key.pem", mode: 0o600)
    let source = AgentConfiguration.CASource.files(
      certificate: fixtures + "/intermediate.pem",
      key: directory + "/intermediate-key.pem",
      chain: fixtures + "/root.pem"
    )
    let root = try Certificate(pemEncoded: try String(contentsOfFile: fixtures + "/root.pem", encoding: .utf8))
    let intermediate = try Certificate(
      pemEncoded: try String(contentsOfFile: fixtures + "/intermediate.pem", encoding: .utf8))
    try await RunningAgent.with(try RunningAgent.configuration(caSource: source)) { running in
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default", "ROOTCA"])
      #expect(secrets[0].certificates.count == 2)
      #expect(secrets[0].certificates[1] == intermediate)
      #expect(secrets[0].certificates[0].issuer == intermediate.subject)
      #expect(secrets[1].certificates == [root])
    }
  }

  @Test func aCAKeyReadableByOthersIsRefused() throws {
    let directory = TemporaryDirectory.make()
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    try self.write(try root.certificate.pemString(), to: directory + "/root.pem", mode: 0o644)
    try self.write(try root.privateKey.serializeAsPEM().pemString, to: directory + "/root-key.pem", mode: 0o644)
    #expect {
      _ = try CAStore.load(
        .files(certificate: directory + "/root.pem", key: directory + "/root-key.pem", chain: nil),
        stateDirectory: directory,
        trustDomain: "cluster.local"
      )
    } throws: { error in
      "\(error)".contains("chmod 600")
    }
  }

  @Test func aKeyThatDoesNotMatchTheCertificateIsRefused() throws {
    let directory = TemporaryDirectory.make()
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let other = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    try self.write(try root.certificate.pemString(), to: directory + "/root.pem", mode: 0o644)
    try self.write(try other.privateKey.serializeAsPEM().pemString, to: directory + "/key.pem", mode: 0o600)
    #expect {
      _ = try CAStore.load(
        .files(certificate: directory + "/root.pem", key: directory + "/key.pem", chain: nil),
        stateDirectory: directory,
        trustDomain: "cluster.local"
      )
    } throws: { error in
      "\(error)".contains("does not match")
    }
  }

  private func mode(_ path: String) throws -> Int {
    try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
  }

  private func write(_ text: String, to path: String, mode: Int) throws {
    _ = FileManager.default.createFile(
      atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: mode])
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
  }
}
