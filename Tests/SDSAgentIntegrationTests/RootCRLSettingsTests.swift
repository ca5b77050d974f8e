import Foundation
import SDSAgent
import SDSAgentCore
import Testing

/// `ca-root-crl`, the operator root's list for an operator CA that signs through an
/// intermediate: read with the operator's CA files, refused without them.
@Suite struct RootCRLSettingsTests {
  func load(_ flags: [String: [String]]) throws -> AgentConfiguration {
    try ConfigurationLoader(flags: flags, environment: ["HOME": "/home/x"], configFile: nil).load()
  }

  @Test func theRootsListComesWithTheOperatorsFilesOnly() throws {
    let files = ["ca-cert": ["/etc/ca/intermediate.pem"], "ca-key": ["/etc/ca/key.pem"]]
    #expect(try self.load(files).caRootCRL == nil)
    #expect(try self.load(files.merging(["ca-root-crl": ["/etc/ca/root.crl"]]) { $1 }).caRootCRL == "/etc/ca/root.crl")
    #expect {
      try self.load(["ca-root-crl": ["/etc/ca/root.crl"]])
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "ca-root-crl" && $0.allowed.contains("ca-cert and ca-key") }
        ?? false
    }
  }

  @Test func theIntermediatesListIsServedUnlessTurnedOff() throws {
    let files = ["ca-cert": ["/etc/ca/intermediate.pem"], "ca-key": ["/etc/ca/key.pem"]]
    #expect(try self.load(files).intermediateCRL)
    #expect(try !self.load(files.merging(["intermediate-crl": ["false"]]) { $1 }).intermediateCRL)
    #expect(throws: ConfigurationError.self) { try self.load(files.merging(["intermediate-crl": ["maybe"]]) { $1 }) }
  }
}
