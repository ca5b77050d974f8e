import Foundation
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `ca serve`'s options, declared like `run`'s: one declaration gives the key, the environment
/// variable and the check of the value.
@Suite struct CAServeSettingsTests {
  func settings(flags: [String: [String]] = [:], environment: [String: String] = [:]) -> SettingsSource {
    SettingsSource(flags: flags, environment: environment, environmentPrefix: CAServeSettings.environmentPrefix)
  }

  @Test func everyKeyIsDeclaredOnce() {
    let keys = CAServeSettings.all.map(\.key)
    #expect(Set(keys).count == keys.count)
    #expect(keys.contains("listen") && keys.contains("trusted-node-identity") && keys.contains("ca-cert"))
  }

  @Test func theEnvironmentIsCAServesOwnAndTheCommandLineWins() throws {
    let environment = ["SDS_AGENT_CA_SERVE_MAX_TTL": "1h", "SDS_AGENT_LISTEN": "127.0.0.1:1", "SDS_AGENT_ADMIN": "x"]
    #expect(try self.settings(environment: environment).require(CAServeSettings.maximumTTL) == .seconds(3600))
    #expect(try self.settings(environment: environment).read(CAServeSettings.listen) == nil)
    #expect(try self.settings(environment: environment).read(CAServeSettings.admin) == nil)
    let both = self.settings(flags: ["max-ttl": ["2h"]], environment: environment)
    #expect(try both.require(CAServeSettings.maximumTTL) == .seconds(7200))
    #expect(try self.settings().require(CAServeSettings.maximumTTL) == .seconds(86400))
  }

  @Test func aBadValueNamesTheKeyWhereItCameFromAndWhatIsAllowed() {
    #expect(throws: ConfigurationError(key: "listen", value: "nowhere", allowed: "HOST:PORT")) {
      try self.settings(flags: ["listen": ["nowhere"]]).require(CAServeSettings.listen)
    }
    #expect {
      try self.settings(environment: ["SDS_AGENT_CA_SERVE_MAX_TTL": "soon"]).require(CAServeSettings.maximumTTL)
    } throws: { error in
      (error as? ConfigurationError)?.key == "max-ttl (from SDS_AGENT_CA_SERVE_MAX_TTL)"
    }
    #expect {
      try self.settings(flags: ["trusted-node-identity": ["spiffe://a/b", "node"]]).readAll(
        CAServeSettings.trustedNodeIdentity)
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "trusted-node-identity" && $0.value == "node" } ?? false
    }
    #expect(throws: ConfigurationError.self) { try self.settings().require(CAServeSettings.stateDirectory) }
  }
}
