import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `--secret name=NAME,generic=FILE` and `generic.KEY=FILE` (`generic: {KEY: FILE}` in YAML), their
/// refusals, and `--istio-credential-sockets`.
@Suite struct GenericSecretSettingsTests {
  func refusal(_ text: String) -> ConfigurationError? {
    do {
      _ = try FileSecretSource(parsing: text)
      return nil
    } catch {
      return error
    }
  }

  @Test func oneFileOrOneFilePerKey() throws {
    let single = try FileSecretSource(parsing: "name=token,generic=/etc/edge/token")
    #expect(single.files == .generic(.single("/etc/edge/token")))
    #expect(single.paths == ["/etc/edge/token"])
    #expect(single.description == "name=token,generic=/etc/edge/token")

    let keyed = try FileSecretSource(parsing: "name=oauth,generic.secret=/etc/o/s,generic.client-id=/etc/o/id")
    #expect(
      keyed.files
        == .generic(.keyed([.init(key: "client-id", path: "/etc/o/id"), .init(key: "secret", path: "/etc/o/s")])))
    #expect(keyed.description == "name=oauth,generic.client-id=/etc/o/id,generic.secret=/etc/o/s")
    #expect(try FileSecretSource(parsing: keyed.description) == keyed)
  }

  @Test func refusalsSayWhatIsWrong() {
    let cases: [(String, String)] = [
      ("name=t,generic=/a,cert=/c", "a generic secret has no cert"),
      ("name=t,generic=/a,ca=/c", "a generic secret has no ca"),
      ("name=t,generic=/a,generic.k=/b", "either generic=FILE or generic.KEY=FILE"),
      ("name=t,generic.=/b", "a key of 1 to 128"),
      ("name=t,generic.a b=/b", "a key of 1 to 128"),
      ("name=t,generic=token.txt", "an absolute path"),
      ("name=t,generic=/a,generic=/b", "each key once"),
      ("name=t:x,generic=/a", "no ':'"),
    ]
    for (text, expected) in cases {
      let error = self.refusal(text)
      #expect(error?.key == "secret", "\(text)")
      #expect(
        error?.allowed.contains(expected) == true || error?.value.contains(expected) == true,
        "\(text): \(String(describing: error))")
    }
    let many = (0...GenericSecretFiles.maximumKeys).map { "generic.k\($0)=/f\($0)" }.joined(separator: ",")
    #expect(self.refusal("name=t," + many)?.allowed.contains("at most 64 keys") == true)
  }

  @Test func yamlMapsKeysToFiles() throws {
    let directory = TemporaryDirectory.make()
    let config = directory + "/config.yaml"
    try """
    secret:
      - {name: token, generic: /etc/edge/token}
      - name: oauth
        generic: {client-id: /etc/o/id, client-secret: /etc/o/secret}
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let configuration = try ConfigurationLoader(flags: [:], environment: ["HOME": "/home/x"], configFile: config).load()
    #expect(
      configuration.fileSecrets.map(\.description) == [
        "name=token,generic=/etc/edge/token",
        "name=oauth,generic.client-id=/etc/o/id,generic.client-secret=/etc/o/secret",
      ])
  }

  @Test func credentialSocketsLieBesideTheAgentsOwn() throws {
    func load(_ flags: [String: [String]]) throws -> AgentConfiguration {
      try ConfigurationLoader(flags: flags, environment: ["HOME": "/home/x"], configFile: nil).load()
    }
    #expect(try load([:]).istioCredentialSockets == nil)
    let loaded = try load(["istio-credential-sockets": ["/var/run/secrets/credential-uds"]])
    #expect(loaded.istioCredentialSockets == "/var/run/secrets/credential-uds")
    #expect(
      AgentConfiguration.credentialSocketPaths(in: "/var/run/secrets/credential-uds/") == [
        "/var/run/secrets/credential-uds/socket", "/var/run/secrets/credential-uds/files-socket",
      ])
    #expect {
      try load(["istio-credential-sockets": ["/run/c"], "socket": ["/run/c/socket"]])
    } throws: { error in
      (error as? ConfigurationError).map {
        $0.key == "istio-credential-sockets" && $0.allowed.contains("/run/c/socket")
      }
        ?? false
    }
    #expect(throws: ConfigurationError.self) { try load(["istio-credential-sockets": ["run/c"]]) }
  }
}
