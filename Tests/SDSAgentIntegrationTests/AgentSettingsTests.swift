import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The one table of `run`'s settings, and everything derived from it: the command line, the
/// environment, the config file's keys and shapes, help, `check-config` and reload.
@Suite struct AgentSettingsTests {
  func file(_ text: String) throws -> String {
    let path = TemporaryDirectory.make() + "/config.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func expectError(
    key: String, value: String? = nil, allowing fragments: [String], _ body: () throws -> Void
  ) {
    #expect {
      try body()
    } throws: { error in
      guard let error = error as? ConfigurationError else { return false }
      return error.key == key && (value.map { error.value == $0 } ?? true)
        && fragments.allSatisfy(error.allowed.contains)
    }
  }

  @Test func everyKeyIsDeclaredOnceAndTheFileTakesAllButConfig() {
    let keys = AgentSettings.all.map(\.key)
    #expect(Set(keys).count == keys.count)
    #expect(AgentSettings.fileSettings.map(\.key) == keys.filter { $0 != "config" })
  }

  @Test func optionsAreReadTheWayRunAlwaysTookThem() throws {
    let loader = try ConfigurationLoader(
      arguments: [
        "--cert-ttl", "30s", "--key-type=rsa-2048", "--socket=/tmp/b.sock",
        "--caller-identity", "peer", "--workload", "uid=1,spiffe-id=spiffe://cluster.local/a",
        "--workload=gid=2,spiffe-id=spiffe://cluster.local/b", "--ca", "istio", "--ca-address", "127.0.0.1:15010",
        "--ca-insecure-plaintext", "--ca-header", "X-A=1", "--ca-header=X-B=2", "--token-file", "/nonexistent",
        "--identity", "spiffe://cluster.local/ns/a/sa/b",
      ],
      environment: ["SDS_AGENT_CERT_TTL": "2h", "SDS_AGENT_LOG_LEVEL": "debug"]
    )
    let configuration = try loader.load()
    #expect(configuration.certificateTTL == .seconds(30))
    #expect(configuration.keyType == .rsa2048)
    #expect(configuration.socketPath == "/tmp/b.sock")
    #expect(configuration.logLevel == .debug)
    #expect(
      configuration.nodeAgent.rules.map(\.identity.description) == [
        "spiffe://cluster.local/a", "spiffe://cluster.local/b",
      ])
    #expect(configuration.istioCA?.insecurePlaintext == true)
    #expect(configuration.istioCA?.extraHeaders == ["X-A": "1", "X-B": "2"])
    #expect(
      try ConfigurationLoader(arguments: ["--ca-insecure-plaintext=false"], environment: [:]).flags == [
        "ca-insecure-plaintext": ["false"]
      ])
  }

  @Test(arguments: [
    (["--cert-tll", "5s"], "option", "--cert-tll", "did you mean --cert-ttl?"),
    (["--cert-ttl"], "cert-ttl", "", "a value after --cert-ttl: a duration"),
    (["--cert-ttl", "--socket", "/tmp/x"], "cert-ttl", "", "a value after --cert-ttl"),
    (["serve"], "argument", "serve", "options such as --cert-ttl 1h"),
  ])
  func aBadCommandLineNamesTheArgumentAndWhatIsAllowed(
    arguments: [String], key: String, value: String, allowed: String
  ) {
    self.expectError(key: key, value: value, allowing: [allowed]) {
      _ = try ConfigurationLoader(arguments: arguments, environment: [:])
    }
  }

  @Test func errorsSayWhereTheValueCameFrom() throws {
    self.expectError(key: "cert-ttl", value: "soon", allowing: ["a duration"]) {
      _ = try ConfigurationLoader(arguments: ["--cert-ttl", "soon"], environment: [:]).load()
    }
    self.expectError(key: "cert-ttl (from SDS_AGENT_CERT_TTL)", value: "soon", allowing: ["a duration"]) {
      _ = try ConfigurationLoader(flags: [:], environment: ["SDS_AGENT_CERT_TTL": "soon"]).load()
    }
    let path = try self.file("cert-ttl: soon\n")
    self.expectError(key: "cert-ttl (from the config file)", value: "soon", allowing: ["a duration"]) {
      _ = try ConfigurationLoader(arguments: ["--config", path], environment: [:]).load()
    }
    #expect(
      ConfigurationError(key: "cert-ttl", value: "x", allowed: "a duration").description
        == "invalid cert-ttl \"x\": expected a duration")
  }

  @Test(arguments: [
    ("socket-mode: ['0600', '0666']\n", "socket-mode (from the config file)", "a list of 2", "only repeatable keys"),
    ("cert-ttl: {a: 1h}\n", "cert-ttl (from the config file)", "a mapping of 1", "one value"),
    (
      "workload: {uid: 1, spiffe-id: spiffe://cluster.local/a}\n", "workload (from the config file)", "a mapping of 2",
      "a list"
    ),
    ("ca-header: [{X-A: 1}]\n", "ca-header (from the config file)", "a mapping of 1", "a list of plain values"),
    ("cert-tll: [1h, 2h]\n", "cert-tll", "a list of 2", "did you mean cert-ttl?"),
    ("config: /etc/other.yaml\n", "config", "/etc/other.yaml", "a known key"),
  ])
  func aValueOfTheWrongShapeIsAnErrorNamingTheKey(text: String, key: String, value: String, allowed: String) throws {
    let path = try self.file(text)
    self.expectError(key: key, value: value, allowing: [allowed]) {
      _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    }
  }

  @Test func anUnknownKeyListsTheKnownKeys() throws {
    let path = try self.file("bogus-key: {nested: [1, 2]}\n")
    self.expectError(
      key: "bogus-key", value: "a mapping of 1",
      allowing: ["a known key: socket, socket-mode,", "caller-certificate-rate"]
    ) {
      _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    }
  }

  @Test func aConfigFileThatIsNotUTF8IsAnError() throws {
    let path = TemporaryDirectory.make() + "/config.yaml"
    try Data([0x63, 0x65, 0x72, 0x74, 0x2D, 0x74, 0x74, 0x6C, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]).write(
      to: URL(fileURLWithPath: path))
    self.expectError(key: "config", value: path, allowing: ["UTF-8"]) {
      _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    }
  }

  @Test func checkConfigShowsEveryKeyWithItsValueAndOrigin() throws {
    let loader = ConfigurationLoader(
      flags: ["admin": ["127.0.0.1:15000"]],
      environment: [
        "SDS_AGENT_CALLER_IDENTITY": "peer", "SDS_AGENT_WORKLOAD": "uid=1,spiffe-id=spiffe://cluster.local/a",
      ],
      configFile: try self.file("ca-header: {X-A: 1}\n"))
    let effective = try loader.effectiveSettings()
    #expect(effective.map(\.key) == AgentSettings.fileSettings.map(\.key))
    let byKey = Dictionary(uniqueKeysWithValues: effective.map { ($0.key, $0) })
    #expect(byKey["admin"]?.value == "127.0.0.1:15000" && byKey["admin"]?.origin == "flag")
    #expect(byKey["workload"]?.value == "uid=1,spiffe-id=spiffe://cluster.local/a")
    #expect(byKey["workload"]?.origin == "environment")
    #expect(byKey["ca-header"]?.origin == "file")
    #expect(byKey["cert-ttl"]?.value == "1d" && byKey["cert-ttl"]?.origin == "default")
  }

  @Test func helpShowsEveryOptionWithItsDefaultWithinEightyColumns() {
    let help = AgentSettings.help()
    for setting in AgentSettings.all {
      #expect(help.contains("  --\(setting.key)"), "\(setting.key) missing from help")
    }
    #expect(help.contains("--cert-ttl <duration>"))
    #expect(
      help.replacingOccurrences(of: "\n        ", with: " ").contains(
        "--cert-ttl <duration> Lifetime of workload certificates, e.g. 30s, 1h, 24h, 1h30m. Default: 24h. Reload applies it."
      ))
    #expect(help.split(separator: "\n").allSatisfy { $0.count < 80 })
  }

  @Test func reloadWarnsAboutExactlyTheKeysDeclaredRestart() throws {
    let directory = TemporaryDirectory.make()
    let old = try AgentConfigurationBuilder(directory: directory).build()
    var next = AgentConfigurationBuilder(directory: directory)
    next.certificateTTL = .seconds(60)
    next.logLevel = .debug
    #expect(AgentSettings.restartRequired(from: old, to: try next.build()).isEmpty)
    next.admin = .loopback(host: "127.0.0.1", port: 15000)
    next.logFormat = .json
    #expect(AgentSettings.restartRequired(from: old, to: try next.build()) == ["log-format", "admin"])
  }

  @Test func theBuilderCannotMakeAConfigurationRunWouldRefuse() {
    var builder = AgentConfigurationBuilder()
    builder.identification = .peer
    self.expectError(key: "workload", allowing: ["at least one rule"]) { _ = try builder.build() }
    builder = AgentConfigurationBuilder()
    builder.certificateTTL = .seconds(1)
    self.expectError(key: "cert-ttl", allowing: ["at least 2s"]) { _ = try builder.build() }
  }

  @Test func caServeReadsTheKeysItSharesWithRunThroughTheSameDeclarations() {
    self.expectError(key: "ca-key", allowing: ["a key file, because ca-cert /x.pem is set"]) {
      _ = try ConfigurationLoader.caSource(SettingsSource(flags: ["ca-cert": ["/x.pem"]]))
    }
    self.expectError(key: "log-level", value: "loud", allowing: ["trace, debug, info"]) {
      _ = try SettingsSource(flags: ["log-level": ["loud"]]).require(AgentSettings.logLevel)
    }
  }
}

/// Values that are too large, too long or not text are errors naming the key, never traps.
@Suite struct SettingsBoundsTests {
  func file(_ text: String) throws -> String {
    let path = TemporaryDirectory.make() + "/config.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func error(_ body: () throws -> Void) -> ConfigurationError? {
    do {
      try body()
      return nil
    } catch {
      return error as? ConfigurationError
    }
  }

  @Test(arguments: ["99999999999999999999h", "9223372036854775807s", "366d", "1s"])
  func aCertificateLifetimeOutsideTwoSecondsToAYearIsAnError(value: String) throws {
    let error = try #require(
      self.error { _ = try ConfigurationLoader(arguments: ["--cert-ttl", value], environment: [:]).load() })
    #expect(error.key == "cert-ttl")
    #expect(error.value == value)
    #expect(error.allowed.contains("from 2s to 365d"))
  }

  @Test func aCertificateLifetimeOfAYearIsAccepted() throws {
    let configuration = try ConfigurationLoader(arguments: ["--cert-ttl", "365d"], environment: [:]).load()
    #expect(configuration.certificateTTL == .seconds(365 * 86400))
  }

  @Test(arguments: ["0s", "8d", "9223372036854775807s"])
  func anIdleTimeoutOutsideItsRangeIsAnError(value: String) throws {
    let error = try #require(
      self.error {
        _ = try ConfigurationLoader(arguments: ["--workload-idle-timeout", value], environment: [:]).load()
      })
    #expect(error.key == "workload-idle-timeout")
    #expect(error.allowed.contains("from 1s to 7d"))
  }

  @Test func aHugeIdentityIsRefusedWithItsValueCut() throws {
    let huge = "spiffe://cluster.local/" + String(repeating: "a", count: 10_000_000)
    let error = try #require(
      self.error { _ = try ConfigurationLoader(arguments: ["--identity", huge], environment: [:]).load() })
    #expect(error.key == "identity")
    #expect(error.allowed.contains("at most 2048"))
    #expect(error.value.hasSuffix("…(+\(huge.count - 256) characters)"))
    #expect(error.description.utf8.count < 1024)
  }

  @Test func aValueThatWasNotUTF8IsAnErrorNamingTheKey() throws {
    // What the command line and the environment hold for bytes that are not UTF-8.
    let decoded = String(decoding: [0x31, 0xFF, 0x68], as: UTF8.self)
    let fromEnvironment = try #require(
      self.error { _ = try ConfigurationLoader(flags: [:], environment: ["SDS_AGENT_CERT_TTL": decoded]).load() })
    #expect(fromEnvironment.key == "cert-ttl (from SDS_AGENT_CERT_TTL)")
    #expect(fromEnvironment.allowed.contains("UTF-8"))
    let fromFlag = try #require(
      self.error { _ = try ConfigurationLoader(arguments: ["--socket", "/tmp/\(decoded)"], environment: [:]).load() })
    #expect(fromFlag.key == "socket")
    #expect(fromFlag.allowed.contains("UTF-8"))
  }

  @Test func aConfigFileOverOneMebibyteIsRefusedUnread() throws {
    let path = try self.file("# " + String(repeating: "x", count: ConfigFile.maximumSize) + "\n")
    let error = try #require(
      self.error { _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load() })
    #expect(error.key == "config")
    #expect(error.allowed.contains("at most 1048576 bytes"))
  }

  @Test func aBillionLaughsDocumentIsRefusedBeforeItExpands() throws {
    var text = "lol0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n"
    for level in 1...9 {
      let refs = Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ")
      text += "lol\(level): &a\(level) [\(refs)]\n"
    }
    text += "workload: *a9\n"
    let path = try self.file(text)
    let clock = ContinuousClock()
    var refusal: ConfigurationError?
    let elapsed = clock.measure {
      refusal = self.error { _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load() }
    }
    print("a billion-laughs config file was refused in \(elapsed)")
    let error = try #require(refusal)
    #expect(error.key == "config")
    #expect(error.allowed.contains("without anchors and aliases"))
  }

  @Test func aDeeplyNestedDocumentIsRefusedNotAStackOverflow() throws {
    let path = try self.file("workload: " + String(repeating: "[", count: 100_000) + "\n")
    let error = try #require(
      self.error { _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load() })
    #expect(error.key == "config")
    #expect(error.allowed.contains("valid YAML"))
    #expect(error.description.utf8.count < 2048)
  }

  @Test func anAliasIsRefusedEvenWhereItWouldBeHarmless() throws {
    let path = try self.file("cert-ttl: &ttl 1h\nworkload-idle-timeout: *ttl\n")
    let error = try #require(
      self.error { _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load() })
    #expect(error.key == "config")
    #expect(error.allowed.contains("&ttl"))
  }
}
