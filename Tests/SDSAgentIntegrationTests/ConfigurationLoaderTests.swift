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
    ("caller-identity: kernel\n", "caller-identity", "peer-and-token"),
    ("caller-identity: peer\n", "workload", "at least one rule"),
    ("workload: [{uid: 1001, spiffe-id: spiffe://cluster.local/a}]\n", "workload", "peer, peer-or-token"),
    (
      "caller-identity: peer\nworkload: [{uid: x, spiffe-id: spiffe://cluster.local/a}]\n", "workload",
      "uid as a number"
    ),
    ("caller-identity: peer\nworkload: [{uid: 1, spiffe-id: spiffe://other.org/a}]\n", "workload", "trust domain"),
    ("caller-identity: peer\nworkload: [{spiffe-id: spiffe://cluster.local/a}]\n", "workload", "uid, gid or exe"),
    ("caller-identity: token\n", "jwt-keys", "verify forwarded tokens"),
    ("caller-stream-rate: fast\n", "caller-stream-rate", "50/s"),
    ("trust-bundle: [spiffe://cluster.local=/b.pem]\n", "trust-bundle", "the agent's own"),
    ("trust-bundle: [spiffe://Other=/b.pem]\n", "trust-bundle", "lowercase"),
    ("trust-bundle: [spiffe://other.org/path=/b.pem]\n", "trust-bundle", "no path"),
    ("trust-bundle: [other.org]\n", "trust-bundle", "spiffe://<trust-domain>=<file>"),
    ("trust-bundle: [a.org=/a.pem, a.org=/b.pem]\n", "trust-bundle", "named twice"),
    ("root-overlap: 0s\n", "root-overlap", "from 1s"),
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

  @Test func trustBundlesComeAsAListOrAMappingOfDomainToFile() throws {
    let listed = try ConfigurationLoader(
      flags: [:], environment: [:],
      configFile: try self.file("trust-bundle:\n  - spiffe://b.org=/b.pem\n  - a.org=/a.pem\n")
    ).load()
    #expect(listed.federatedBundles.map(\.description) == ["spiffe://b.org=/b.pem", "spiffe://a.org=/a.pem"])
    let mapped = try ConfigurationLoader(
      flags: ["spiffe-validator": ["false"]], environment: [:],
      configFile: try self.file("trust-bundle:\n  spiffe://b.org: /b.pem\n")
    ).load()
    #expect(mapped.federatedBundles.map(\.description) == ["spiffe://b.org=/b.pem"])
    #expect(mapped.spiffeValidator == false)
    #expect(listed.spiffeValidator == true)
  }

  /// An executable file, since an `exe` rule must name one that exists.
  func executable() throws -> String {
    let path = TemporaryDirectory.make() + "/envoy"
    try "#!/bin/sh\n".write(toFile: path, atomically: true, encoding: .utf8)
    return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
  }

  @Test func workloadRulesComeFromYAMLMappingsFlagsOrTheEnvironment() throws {
    let envoy = try self.executable()
    let path = try self.file(
      """
      caller-identity: peer
      workload:
        - {uid: 1001, spiffe-id: spiffe://cluster.local/ns/web/sa/frontend}
        - {uid: 1002, exe: \(envoy), spiffe-id: spiffe://cluster.local/ns/web/sa/gateway}
        - gid=3000,spiffe-id=spiffe://cluster.local/ns/batch/sa/jobs
      caller-certificate-rate: 5/m
      workload-idle-timeout: 1m

      """)
    let fromFile = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load().nodeAgent
    #expect(fromFile.identification == .peer)
    #expect(
      fromFile.rules.map(\.description) == [
        "uid=1001,spiffe-id=spiffe://cluster.local/ns/web/sa/frontend",
        "uid=1002,exe=\(envoy),spiffe-id=spiffe://cluster.local/ns/web/sa/gateway",
        "gid=3000,spiffe-id=spiffe://cluster.local/ns/batch/sa/jobs",
      ])
    #expect(fromFile.limits.certificateRate == Rate(count: 5, period: .seconds(60)))
    #expect(fromFile.limits.idleTimeout == .seconds(60))

    let fromEnvironment = try ConfigurationLoader(
      flags: [:],
      environment: [
        "SDS_AGENT_CALLER_IDENTITY": "peer",
        "SDS_AGENT_WORKLOAD": "uid=1,spiffe-id=spiffe://cluster.local/a; gid=2,spiffe-id=spiffe://cluster.local/b",
      ]
    ).load().nodeAgent
    #expect(
      fromEnvironment.rules.map(\.identity.description) == ["spiffe://cluster.local/a", "spiffe://cluster.local/b"])
  }

  @Test func clientCommandsFindTheAgentThroughTheSameLayers() throws {
    let path = try self.file("socket: /run/x/sds.sock\nadmin: unix:/run/x/admin.sock\ncert-ttl: 1h\n")
    let fromFile = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).agentEndpoints()
    #expect(fromFile.socketPath == "/run/x/sds.sock")
    #expect(fromFile.admin == .unixSocket(path: "/run/x/admin.sock"))
    let overridden = try ConfigurationLoader(
      flags: ["socket": ["/tmp/flag.sock"]], environment: ["SDS_AGENT_ADMIN": "127.0.0.1:15000"], configFile: path
    ).agentEndpoints()
    #expect(overridden.socketPath == "/tmp/flag.sock")
    #expect(overridden.admin == .loopback(host: "127.0.0.1", port: 15000))
  }

  @Test func theShippedExampleConfigsAreValid() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let envoy = try self.executable()
    for name in ["config.minimal.yaml", "config.full.yaml", "config.node-agent.yaml"] {
      // The examples' `exe` rules name the operator's Envoy, which this machine need not have.
      let text = try String(contentsOf: root.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
      let path = try self.file(text.replacingOccurrences(of: "/usr/local/bin/envoy", with: envoy))
      _ = try ConfigurationLoader(flags: [:], environment: [:], configFile: path).load()
    }
  }

  /// Issue #21, class 2: an on-demand certificate is a server key.
  @Test func onDemandCallersAreEveryoneWithOneIdentityAndOnlyThoseNamedForANodeAgent() throws {
    let names = ["on-demand-names": ["*.internal.example"]]
    let rule = ["workload": ["uid=1001,spiffe-id=spiffe://cluster.local/ns/web/sa/frontend"]]
    let gateway = try SPIFFEID(parsing: "spiffe://cluster.local/ns/edge/sa/gateway")
    func load(_ flags: [String: [String]]) throws -> AgentConfiguration {
      try ConfigurationLoader(flags: flags, environment: ["HOME": "/home/x"], configFile: nil).load()
    }
    #expect(try load(names).onDemand?.callers == nil, "one identity for all: everyone may")
    let node = try load(names.merging(rule) { $1 }.merging(["caller-identity": ["peer"]]) { $1 })
    #expect(node.onDemand?.callers == [], "a node agent: nobody unless named")
    let named = try load(
      names.merging(rule) { $1 }.merging(["caller-identity": ["peer"], "on-demand-callers": ["\(gateway)"]]) { $1 })
    #expect(named.onDemand?.callers == [gateway])
    #expect {
      try load(names.merging(["on-demand-callers": ["spiffe://cluster.local/ns/\u{212A}ube"]]) { $1 })
    } throws: { error in
      "\(error)".contains("on-demand-callers") && "\(error)".contains("ASCII")
    }
  }
}
