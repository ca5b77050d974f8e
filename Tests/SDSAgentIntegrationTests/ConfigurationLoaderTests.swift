import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@Suite struct ConfigurationLoaderTests {
  func file(_ text: String) throws -> String {
    let path = TemporaryDirectory.make() + "/config.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func flagsBeatEnvironmentBeatsFileBeatsDefaults() throws {
    let path = try self.file("cert-ttl: 1h\nkey-type: rsa-2048\nlog-level: debug\nsocket: /tmp/file.sock\n")
    let loader = ConfigurationLoader(
      flags: ["cert-ttl": ["30s"]],
      environment: ["SDS_AGENT_CERT_TTL": "2h", "SDS_AGENT_KEY_TYPE": "ecdsa-p256", "HOME": "/home/x"],
      configFile: path
    )
    let configuration = try loader.load()
    #expect(configuration.certificateTTL == .seconds(30))
    #expect(configuration.keyType == .ecdsaP256)
    #expect(configuration.logLevel == .debug)
    #expect(configuration.socketPath == "/tmp/file.sock")
    #expect(configuration.trustDomain == "cluster.local")
    let effective = try loader.effectiveSettings()
    #expect(effective.first { $0.key == "cert-ttl" }?.origin == "flag")
    #expect(effective.first { $0.key == "key-type" }?.origin == "environment")
    #expect(effective.first { $0.key == "log-level" }?.origin == "file")
    #expect(effective.first { $0.key == "trust-domain" }?.origin == "default")
  }

  @Test(arguments: [
    ("cert-tll: 5s\n", "cert-tll", "a known key"),
    ("cert-ttl: soon\n", "cert-ttl", "a duration"),
    ("admin: 0.0.0.0:9000\n", "admin", "127.0.0.1:PORT"),
    ("key-type: dsa\n", "key-type", "ecdsa-p256 or rsa-2048"),
    ("socket-mode: 999\n", "socket-mode", "octal"),
    ("ca: vault\n", "ca", "local or istio"),
    ("ca: istio\nca-address: istiod:15012\n", "ca-root", "roots"),
    ("cert-ttl: [1h\n", "config", "valid YAML"),
    ("- a\n- b\n", "config", "a mapping"),
  ])
  func errorsNameTheKeyTheValueAndWhatIsAllowed(text: String, key: String, allowed: String) throws {
    let loader = ConfigurationLoader(flags: [:], environment: [:], configFile: try self.file(text))
    #expect {
      _ = try loader.load()
    } throws: { error in
      guard let error = error as? ConfigurationError else { return false }
      return error.key.hasPrefix(key) && error.allowed.contains(allowed)
    }
  }

  @Test func listsAndMappingsFeedRepeatableKeys() throws {
    let path = try self.file(
      "ca: istio\nca-address: 127.0.0.1:15012\nca-root: /x.pem\ntoken-file: /nonexistent\nidentity: spiffe://cluster.local/ns/a/sa/b\nca-header:\n  X-One: a\n  X-Two: b\n"
    )
    let configuration = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    #expect(configuration.istioCA?.extraHeaders == ["X-One": "a", "X-Two": "b"])
  }

  @Test func theShippedExampleConfigsAreValid() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    for name in ["config.minimal.yaml", "config.full.yaml"] {
      let path = root.appendingPathComponent("systemd/\(name)").path
      _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    }
  }
}
