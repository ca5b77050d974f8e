import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The options of fleet revocation, declared like every other: the agent's `ca-crl` and
/// `crl-refresh` (fetch mode), `ca serve`'s `crl-url` and `crl-listen`.
@Suite struct CRLFollowingSettingsTests {
  func load(_ flags: [String: [String]]) throws -> AgentConfiguration {
    let fetchMode: [String: [String]] = [
      "ca": ["istio"], "ca-address": ["127.0.0.1:15010"], "ca-insecure-plaintext": ["true"],
      "token-file": ["/nonexistent"], "identity": ["spiffe://cluster.local/ns/a/sa/b"],
    ]
    return try ConfigurationLoader(
      flags: fetchMode.merging(flags) { $1 }, environment: ["HOME": "/home/x"], configFile: nil
    ).load()
  }

  @Test func theAgentReadsTheCRLFileAndTheRefreshWithTheirDefaults() throws {
    let defaults = try #require(try self.load([:]).istioCA)
    #expect(defaults.crlFile == nil && defaults.crlRefresh == .seconds(60))
    let set = try #require(try self.load(["ca-crl": ["/etc/ca-crl.pem"], "crl-refresh": ["5s"]]).istioCA)
    #expect(set.crlFile == "/etc/ca-crl.pem" && set.crlRefresh == .seconds(5))
    #expect {
      try self.load(["crl-refresh": ["0s"]])
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "crl-refresh" && $0.allowed.contains("from 1s to 1d") } ?? false
    }
  }

  @Test func caServeTakesOnlyAPlainHTTPURLAndAnAddress() throws {
    let source = SettingsSource(
      flags: ["crl-url": ["http://ca.example:8081/crl"], "crl-listen": ["0.0.0.0:8081"]], environment: [:],
      environmentPrefix: CAServeSettings.environmentPrefix)
    #expect(try source.read(CAServeSettings.crlURL)?.url == "http://ca.example:8081/crl")
    #expect(try source.read(CAServeSettings.crlListen).map { "\($0.host):\($0.port)" } == "0.0.0.0:8081")
    #expect {
      try SettingsSource(
        flags: ["crl-url": ["https://ca.example/crl"]], environment: [:],
        environmentPrefix: CAServeSettings.environmentPrefix
      ).read(CAServeSettings.crlURL)
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "crl-url" && $0.allowed.contains("http://") } ?? false
    }
  }

  @Test func caServeRefusesAListenerWithoutAURLBeforeItMakesAnything() async throws {
    let directory = TemporaryDirectory.make() + "/state"
    var configuration = CAServerConfiguration(
      host: "127.0.0.1", port: 0, stateDirectory: directory, jwtKeysFile: "/nonexistent")
    configuration.crlListen = ("127.0.0.1", 0)
    await #expect {
      try await CAServer.build(configuration: configuration, logger: Logger(label: "test"))
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "crl-listen" && $0.allowed.contains("--crl-url") } ?? false
    }
    #expect(!FileManager.default.fileExists(atPath: directory), "the CA was made before the refusal")
  }
}
