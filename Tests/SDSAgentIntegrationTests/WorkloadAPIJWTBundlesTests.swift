import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// `FetchJWTBundles` and `ValidateJWTSVID` over the real socket with a federated trust domain
/// whose SPIFFE bundle carries JWT keys: the stream names both domains, and is pushed when the
/// federated file changes; the other domain's tokens validate against its keys.
@Suite(.timeLimit(.minutes(2))) struct WorkloadAPIJWTBundlesTests {
  static let header: Metadata = ["workload.spiffe.io": "true"]
  let other = try! TrustDomainName(parsing: "other.example")
  let root = try! CAMaterial.generateRoot(trustDomain: "other.example", now: Date())

  /// The other domain's SPIFFE bundle with its root and `key`.
  func write(_ key: JWTSigningKey, to path: String) throws {
    let jwk = try #require(
      try JSONSerialization.jsonObject(with: try JSONEncoder().encode(key.publicKey.jwkValue)) as? [String: String])
    let root: [String: Any] = [
      "use": "x509-svid", "kty": "EC", "crv": "P-256",
      "x5c": [Data(try self.root.certificate.serializeAsPEM().derBytes).base64EncodedString()],
    ]
    let data = try JSONSerialization.data(withJSONObject: ["keys": [root, jwk as Any]])
    try data.write(to: URL(fileURLWithPath: path), options: .atomic)
  }

  func kids(_ jwks: Data?) throws -> [String] {
    let object = try JSONSerialization.jsonObject(with: try #require(jwks)) as? [String: [[String: String]]]
    return (object?["keys"] ?? []).compactMap { $0["kid"] }
  }

  @Test func theStreamIsPushedWhenAFederatedDomainsJWTKeysChangeAndItsTokensValidate() async throws {
    let directory = TemporaryDirectory.make()
    let path = directory + "/other.json"
    let first = JWTSigningKey()
    let second = JWTSigningKey()
    try self.write(first, to: path)
    var builder = AgentConfigurationBuilder(directory: directory)
    builder.federatedBundles = [FederatedBundleSource(trustDomain: self.other, path: path)]
    try await RunningAgent.with(try builder.build()) { running in
      let transport = try HTTP2ClientTransport.Posix(
        target: .unixDomainSocket(path: running.socketPath), transportSecurity: .plaintext)
      try await withGRPCClient(transport: transport) { grpc in
        let client = SpiffeWorkload_SpiffeWorkloadAPI.Client(wrapping: grpc)
        let messages = try await client.fetchJWTBundles(
          request: ClientRequest(message: SpiffeWorkload_JWTBundlesRequest(), metadata: Self.header)
        ) { response in
          var messages: [SpiffeWorkload_JWTBundlesResponse] = []
          for try await message in response.messages {
            messages.append(message)
            if messages.count == 2 { break }
            try self.write(second, to: path)
          }
          return messages
        }
        #expect(messages.count == 2)
        #expect(
          Set(messages.first?.bundles.keys.map { $0 } ?? []) == ["spiffe://cluster.local", "spiffe://other.example"])
        #expect(try self.kids(messages.first?.bundles["spiffe://other.example"]) == [first.kid])
        #expect(try self.kids(messages.last?.bundles["spiffe://other.example"]) == [second.kid])

        let token = try JWTSVIDSigner(key: second).sign(
          try SPIFFEID(parsing: "spiffe://other.example/payments"), audience: ["backend"], issuedAt: Date(),
          ttl: .seconds(60))
        var validate = SpiffeWorkload_ValidateJWTSVIDRequest()
        validate.svid = token.token
        validate.audience = "backend"
        let validated = try await client.validateJWTSVID(
          request: ClientRequest(message: validate, metadata: Self.header))
        #expect(validated.spiffeID == "spiffe://other.example/payments")
      }
    }
  }
}
