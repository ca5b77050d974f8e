import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// Workload API calls in `/debug/streams` and `sds-agent status` by method, requests without the
/// security header counted by method; and a `jwt-svid:<audience>` SDS secret over the real
/// socket, validated by the same socket's `ValidateJWTSVID`.
@Suite(.timeLimit(.minutes(2))) struct WorkloadAPIObservabilityTests {
  static let header: Metadata = ["workload.spiffe.io": "true"]

  func withClient<Result: Sendable>(
    _ path: String, _ body: (SpiffeWorkload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>) async throws -> Result
  ) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in
      try await body(SpiffeWorkload_SpiffeWorkloadAPI.Client(wrapping: client))
    }
  }

  func calls(_ agent: Agent, _ method: String, _ outcome: String) -> Int {
    agent.counters.series.first { entry in
      entry.series.name == .workloadAPICalls
        && entry.series.labels.map { [$0.name, $0.value] } == [["method", method], ["outcome", outcome]]
    }?.value ?? 0
  }

  @Test func anOpenCallIsListedByMethodApartFromEnvoysStreams() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      let agent = running.agent
      let identity = agent.configuration.identity.description
      try await self.withClient(running.socketPath) { client in
        try await client.fetchX509SVID(
          request: ClientRequest(message: SpiffeWorkload_X509SVIDRequest(), metadata: Self.header)
        ) { response in
          for try await _ in response.messages { break }
          let listed = try await AdminClient.request("GET", "/debug/streams", at: admin).decode([AdminAPI.Stream].self)
          #expect(listed.map(\.method) == ["FetchX509SVID"])
          #expect(listed.first?.identity == identity)
          #expect(
            agent.streams.streamsNotAcknowledging(try #require(agent.cache.current.trustBundle?.roots.first)).isEmpty)
          let text = NodeStatus(
            table: agent.identities, streams: agent.streams, certificateAuthority: "the local CA", now: Date()
          ).text(now: Date())
          #expect(text.contains("connected Envoys: 0 node(s), 0 stream(s)"), "\(text)")
          #expect(text.contains("Workload API calls: 1 open"), "\(text)")
          #expect(
            text.split(separator: "\n").contains { $0.hasPrefix("FetchX509SVID") && $0.contains(identity) }, "\(text)")
        }
      }
      try await running.withClient(over: .unixSocket) { client in
        try await client.withStream { stream in
          stream.request(["default"], nodeID: "gateway-1")
          _ = try #require(try await stream.next())
          let listed = try await AdminClient.request("GET", "/debug/streams", at: admin).decode([AdminAPI.Stream].self)
          #expect(listed.contains { $0.method == "StreamSecrets" && $0.nodeID == "gateway-1" })
          let text = NodeStatus(
            table: agent.identities, streams: agent.streams, certificateAuthority: "the local CA", now: Date()
          ).text(now: Date())
          #expect(text.contains("connected Envoys: 1 node(s), 1 stream(s)"), "\(text)")
        }
      }
    }
  }

  @Test func aRequestWithoutTheSecurityHeaderIsCountedByMethod() async throws {
    try await RunningAgent.with { running in
      try await self.withClient(running.socketPath) { client in
        let missing = await #expect(throws: RPCError.self) {
          try await client.fetchX509Bundles(request: ClientRequest(message: SpiffeWorkload_X509BundlesRequest())) {
            response in for try await _ in response.messages {}
          }
        }
        #expect(missing?.code == .invalidArgument)
        let jwt = await #expect(throws: RPCError.self) {
          var request = SpiffeWorkload_JWTSVIDRequest()
          request.audience = ["backend"]
          _ = try await client.fetchJWTSVID(request: ClientRequest(message: request, metadata: ["x": "y"]))
        }
        #expect(jwt?.code == .invalidArgument)
      }
      #expect(self.calls(running.agent, "FetchX509Bundles", "missing_security_header") == 1)
      #expect(self.calls(running.agent, "FetchJWTSVID", "missing_security_header") == 1)
      #expect(self.calls(running.agent, "FetchX509Bundles", "ok") == 0)
    }
  }

  @Test func aJWTSVIDSecretOverTheSocketValidatesAtTheWorkloadAPI() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = admin
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      let token = try await running.withClient(over: .unixSocket) { client in
        try await client.withStream { stream -> String in
          stream.request(["jwt-svid:backend"], nodeID: "gateway-1")
          let response = try #require(try await stream.next())
          let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(
            unpackingAny: try #require(response.resources.first))
          #expect(secret.name == "jwt-svid:backend")
          let value = secret.genericSecret.secret.inlineString
          #expect(value.hasPrefix("Bearer "))
          let token = String(value.dropFirst("Bearer ".count))
          // Listed while held, without the token.
          let listed = try await AdminClient.request("GET", "/debug/secrets", at: admin)
          #expect(!listed.body.contains(token) && listed.body.contains(#""kind" : "jwt_svid""#))
          let secrets = try listed.decode([AdminAPI.Secret].self)
          guard case .jwtSVID(let entry) = secrets.last else {
            Issue.record("no JWT-SVID listed: \(secrets)")
            return token
          }
          #expect(entry.name == "jwt-svid:backend")
          #expect(entry.identity == running.agent.configuration.identity.description)
          #expect(entry.expiresAt.timeIntervalSince(entry.issuedAt) == 300)
          #expect(entry.nextRenewal == entry.issuedAt.addingTimeInterval(150))
          return token
        }
      }
      let validated = try await self.withClient(running.socketPath) { client in
        var request = SpiffeWorkload_ValidateJWTSVIDRequest()
        request.svid = token
        request.audience = "backend"
        return try await client.validateJWTSVID(request: ClientRequest(message: request, metadata: Self.header))
      }
      #expect(validated.spiffeID == running.agent.configuration.identity.description)
      #expect(validated.claims.fields["aud"]?.listValue.values.map(\.stringValue) == ["backend"])
    }
  }
}
