import Foundation
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// No setting given twice is silently dropped: a single-value option repeated is an error naming
/// it, on `run`'s command line, `ca serve`'s and in the config file; repeatable ones keep every value.
@Suite struct RepeatedSettingTests {
  static let commands: [(name: String, declarations: [SettingDeclaration])] = [
    ("run", AgentSettings.all), ("ca serve", CAServeSettings.all),
  ]

  @Test(arguments: 0..<2)
  func everySingleValueOptionGivenTwiceIsAnErrorNamingIt(command: Int) {
    let declarations = Self.commands[command].declarations.filter {
      !$0.kind.isRepeatable && $0.sources.contains(.flag)
    }
    #expect(!declarations.isEmpty)
    for declaration in declarations {
      let value = declaration.kind == .flag ? "--\(declaration.key)=true" : "--\(declaration.key)=a"
      #expect {
        try CommandLineSettings.parse([value, value], declarations: Self.commands[command].declarations)
      } throws: { error in
        guard let error = error as? ConfigurationError else { return false }
        return error.key == declaration.key && error.allowed.contains("--\(declaration.key) once")
      }
    }
  }

  @Test func repeatableOptionsKeepEveryValue() throws {
    let flags = try CommandLineSettings.parse(
      ["--ca-address", "a:1", "--ca-address=b:2", "--ca-header", "X=1"], declarations: AgentSettings.all)
    #expect(flags == ["ca-address": ["a:1", "b:2"], "ca-header": ["X=1"]])
    let serve = try CommandLineSettings.parse(
      ["--jwt-issuer", "a", "--jwt-issuer", "b", "--max-inflight", "3"], declarations: CAServeSettings.all)
    #expect(serve == ["jwt-issuer": ["a", "b"], "max-inflight": ["3"]])
  }

  @Test func aKeyTwiceInTheConfigFileIsAnError() {
    // Yams refuses a mapping with a key twice before any value is read.
    #expect {
      try ConfigFile.parse("cert-ttl: 1h\ncert-ttl: 2h\n", path: "c.yaml", declarations: AgentSettings.fileSettings)
    } throws: { error in
      (error as? ConfigurationError).map { $0.key == "config" && $0.allowed.contains("duplicated key(s): 'cert-ttl'") }
        ?? false
    }
  }

  static let fetchMode: [String: [String]] = [
    "ca": ["istio"], "ca-insecure-plaintext": ["true"], "token-file": ["/nonexistent"],
    "identity": ["spiffe://cluster.local/ns/a/sa/b"],
  ]

  @Test func caAddressIsRepeatableFromEveryLayer() throws {
    let flags = try ConfigurationLoader(
      flags: Self.fetchMode.merging(["ca-address": ["ca-1:15010", "[::1]:15010"]]) { $1 }, environment: [:]
    ).load()
    #expect(flags.istioCA?.addresses.map(\.description) == ["ca-1:15010", "[::1]:15010"])
    #expect(flags.istioCA?.host == "ca-1")
    let environment = try ConfigurationLoader(
      flags: Self.fetchMode, environment: ["SDS_AGENT_CA_ADDRESS": "ca-1:15010, ca-2:15010"]
    ).load()
    #expect(environment.istioCA?.addresses == [.init(host: "ca-1", port: 15010), .init(host: "ca-2", port: 15010)])
    let path = TemporaryDirectory.make() + "/config.yaml"
    try "ca-address: [ca-1:15010, ca-2:15010, ca-3:15010]\n".write(toFile: path, atomically: true, encoding: .utf8)
    let file = try ConfigurationLoader(flags: Self.fetchMode, environment: [:], configFile: path).load()
    #expect(file.istioCA?.addresses.count == 3)
    #expect {
      try ConfigurationLoader(flags: Self.fetchMode.merging(["ca-address": ["ca-1"]]) { $1 }, environment: [:]).load()
    } throws: { error in
      (error as? ConfigurationError)?.key == "ca-address"
    }
  }

  @Test func caServeReadsItsAdmissionSettings() throws {
    let flags = try CommandLineSettings.parse(
      ["--max-inflight", "0", "--caller-rate", "2.5"], declarations: CAServeSettings.all)
    let settings = SettingsSource(flags: flags, environmentPrefix: CAServeSettings.environmentPrefix)
    #expect(try settings.require(CAServeSettings.maximumInFlight) == 0)
    #expect(try settings.require(CAServeSettings.callerRate) == 2.5)
    let defaults = SettingsSource(environmentPrefix: CAServeSettings.environmentPrefix)
    #expect(try defaults.require(CAServeSettings.maximumInFlight) == 4 * ProcessInfo.processInfo.activeProcessorCount)
    #expect(try defaults.require(CAServeSettings.callerRate) == 0)
    #expect(throws: ConfigurationError.self) {
      try SettingsSource(flags: ["caller-rate": ["-1"]]).require(CAServeSettings.callerRate)
    }
  }
}
