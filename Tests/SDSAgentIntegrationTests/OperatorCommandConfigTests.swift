import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `sds-agent status` and the other operator commands find the agent on a packaged node with no
/// arguments: the packaged config file is their default, and anything an operator names wins.
@Suite struct OperatorCommandConfigTests {
  let packaged: String

  init() throws {
    self.packaged = TemporaryDirectory.make() + "/config.yaml"
    try "admin: unix:/run/sds-agent/private/admin.sock\n".write(
      toFile: self.packaged, atomically: true, encoding: .utf8)
  }

  @Test func thePackagedConfigIsReadWhenNothingNamesOne() throws {
    let loader = ConfigurationLoader.forOperatorCommand(
      flags: [:], configFile: nil, environment: [:], packagedConfigFile: self.packaged)
    #expect(loader.configFile == self.packaged)
    #expect(try loader.agentEndpoints().admin == .unixSocket(path: "/run/sds-agent/private/admin.sock"))
  }

  @Test func aNamedConfigOrAdminWinsOverThePackagedOne() throws {
    let other = TemporaryDirectory.make() + "/other.yaml"
    try "admin: 127.0.0.1:15000\n".write(toFile: other, atomically: true, encoding: .utf8)
    let byFlag = ConfigurationLoader.forOperatorCommand(
      flags: [:], configFile: other, environment: [:], packagedConfigFile: self.packaged)
    #expect(try byFlag.agentEndpoints().admin == .loopback(host: "127.0.0.1", port: 15000))
    let byEnvironment = ConfigurationLoader.forOperatorCommand(
      flags: [:], configFile: nil, environment: ["SDS_AGENT_CONFIG": other], packagedConfigFile: self.packaged)
    #expect(byEnvironment.configFile == other)
    let adminFromEnvironment = ConfigurationLoader.forOperatorCommand(
      flags: [:], configFile: nil, environment: ["SDS_AGENT_ADMIN": "127.0.0.1:16000"],
      packagedConfigFile: self.packaged)
    #expect(try adminFromEnvironment.agentEndpoints().admin == .loopback(host: "127.0.0.1", port: 16000))
  }

  @Test func withoutAPackagedConfigThereIsNoAdminToFind() throws {
    let loader = ConfigurationLoader.forOperatorCommand(
      flags: [:], configFile: nil, environment: [:], packagedConfigFile: self.packaged + ".absent")
    #expect(loader.configFile == nil)
    #expect(try loader.agentEndpoints().admin == nil)
  }

  @Test func theShippedPackagedConfigEnablesThePrivateAdminSocket() throws {
    let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("systemd/config.minimal.yaml").path
    let loader = ConfigurationLoader(flags: [:], environment: [:], configFile: shipped)
    #expect(try loader.agentEndpoints().admin == .unixSocket(path: "/run/sds-agent/private/admin.sock"))
  }
}
