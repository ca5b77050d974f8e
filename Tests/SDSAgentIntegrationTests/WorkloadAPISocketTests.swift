import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

@testable import SDSAgent

#if canImport(Glibc)
  import Glibc
#endif

/// The SPIFFE Workload API over the real socket server, next to SDS: the endpoint's rules (the
/// security header, unidentified callers, off, a socket of its own) and what a caller is pushed.
@Suite(.timeLimit(.minutes(2))) struct WorkloadAPISocketTests {
  static let header: Metadata = ["workload.spiffe.io": "true"]

  /// Runs `body` with a Workload API client on `path`.
  func withClient<Result: Sendable>(
    _ path: String, _ body: (SpiffeWorkload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>) async throws -> Result
  ) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in
      try await body(SpiffeWorkload_SpiffeWorkloadAPI.Client(wrapping: client))
    }
  }

  /// The first `count` messages of a `FetchX509SVID` stream; `between` runs after each but the last.
  func svidMessages(
    _ client: SpiffeWorkload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>, count: Int,
    metadata: Metadata = Self.header,
    between: @escaping @Sendable () async throws -> Void = {}
  ) async throws -> [SpiffeWorkload_X509SVIDResponse] {
    try await client.fetchX509SVID(
      request: ClientRequest(message: SpiffeWorkload_X509SVIDRequest(), metadata: metadata)
    ) { response in
      var messages: [SpiffeWorkload_X509SVIDResponse] = []
      for try await message in response.messages {
        messages.append(message)
        if messages.count == count { break }
        try await between()
      }
      return messages
    }
  }

  /// The count of `method`'s calls that ended with `outcome`.
  func calls(_ agent: Agent, _ method: String, _ outcome: String) -> Int {
    agent.counters.series.first { entry in
      entry.series.name == .workloadAPICalls
        && entry.series.labels.map { [$0.name, $0.value] } == [["method", method], ["outcome", outcome]]
    }?.value ?? 0
  }

  func serial(_ message: SpiffeWorkload_X509SVIDResponse) throws -> String {
    let chain = try #require(message.svids.first).x509Svid
    return try Certificate(derEncoded: Array(chain)).serialNumber.description
  }

  @Test func theStreamCarriesTheSDSCertificateAndARotationArrivesOnIt() async throws {
    try await RunningAgent.with { running in
      let agent = running.agent
      let messages = try await self.withClient(running.socketPath) { client in
        try await self.svidMessages(client, count: 2) { try await agent.rotate() }
      }
      #expect(messages.count == 2)
      let served = try #require(agent.cache.current.svid)
      #expect(try self.serial(messages[1]) == served.leaf.serialNumber.description)
      #expect(try self.serial(messages[0]) != self.serial(messages[1]))
      let svid = try #require(messages[1].svids.first)
      #expect(svid.spiffeID == agent.configuration.identity.description)
      let key = try Certificate.PrivateKey(
        pemDocument: .init(type: "PRIVATE KEY", derBytes: Array(svid.x509SvidKey)))
      #expect(key.publicKey == served.leaf.publicKey)
      #expect(!svid.bundle.isEmpty)
      #expect(self.calls(agent, "FetchX509SVID", "ok") == 1, "a call counts once, not per push")
    }
  }

  @Test func theBundlesStreamNamesTheOwnTrustDomain() async throws {
    try await RunningAgent.with { running in
      let bundles = try await self.withClient(running.socketPath) { client in
        try await client.fetchX509Bundles(
          request: ClientRequest(message: SpiffeWorkload_X509BundlesRequest(), metadata: Self.header)
        ) { response -> SpiffeWorkload_X509BundlesResponse? in
          for try await message in response.messages { return message }
          return nil
        }
      }
      let roots = try #require(bundles?.bundles["spiffe://cluster.local"])
      let ownRoots = try #require(running.agent.cache.current.trustBundle).roots
      #expect(roots == Data(try ownRoots.flatMap { try $0.serializeAsPEM().derBytes }))
    }
  }

  @Test func aRequestWithoutTheSecurityHeaderIsInvalid() async throws {
    try await RunningAgent.with { running in
      try await self.withClient(running.socketPath) { client in
        let missing = await #expect(throws: RPCError.self) {
          _ = try await self.svidMessages(client, count: 1, metadata: [:])
        }
        #expect(missing?.code == .invalidArgument)
        let wrong = await #expect(throws: RPCError.self) {
          _ = try await self.svidMessages(client, count: 1, metadata: ["workload.spiffe.io": "false"])
        }
        #expect(wrong?.code == .invalidArgument)
        let jwt = await #expect(throws: RPCError.self) {
          _ = try await client.fetchJWTBundles(
            request: ClientRequest(message: SpiffeWorkload_JWTBundlesRequest())
          ) { response in for try await _ in response.messages {} }
        }
        #expect(jwt?.code == .invalidArgument)
      }
    }
  }

  @Test func aJWTSVIDValidatesForItsAudienceAndItsKeyIsInTheBundle() async throws {
    try await RunningAgent.with { running in
      let identity = running.agent.configuration.identity.description
      try await self.withClient(running.socketPath) { client in
        var request = SpiffeWorkload_JWTSVIDRequest()
        request.audience = ["backend"]
        let fetched = try await client.fetchJWTSVID(request: ClientRequest(message: request, metadata: Self.header))
        let svid = try #require(fetched.svids.first)
        #expect(svid.spiffeID == identity)
        let again = try await client.fetchJWTSVID(request: ClientRequest(message: request, metadata: Self.header))
        #expect(again.svids.first?.svid == svid.svid, "a token is kept for half its life")

        var validate = SpiffeWorkload_ValidateJWTSVIDRequest()
        validate.svid = svid.svid
        validate.audience = "backend"
        let validated = try await client.validateJWTSVID(
          request: ClientRequest(message: validate, metadata: Self.header))
        #expect(validated.spiffeID == identity)
        #expect(validated.claims.fields["sub"]?.stringValue == identity)
        validate.audience = "frontend"
        let wrongAudience = await #expect(throws: RPCError.self) {
          _ = try await client.validateJWTSVID(request: ClientRequest(message: validate, metadata: Self.header))
        }
        #expect(wrongAudience?.code == .invalidArgument)
        #expect(self.calls(running.agent, "ValidateJWTSVID", "wrong_audience") == 1)
        #expect(self.calls(running.agent, "ValidateJWTSVID", "ok") == 1)

        let noAudience = await #expect(throws: RPCError.self) {
          _ = try await client.fetchJWTSVID(
            request: ClientRequest(message: SpiffeWorkload_JWTSVIDRequest(), metadata: Self.header))
        }
        #expect(noAudience?.code == .invalidArgument)
        request.spiffeID = "spiffe://cluster.local/ns/web/sa/other"
        let other = await #expect(throws: RPCError.self) {
          _ = try await client.fetchJWTSVID(request: ClientRequest(message: request, metadata: Self.header))
        }
        #expect(other?.code == .permissionDenied)

        let bundles = try await client.fetchJWTBundles(
          request: ClientRequest(message: SpiffeWorkload_JWTBundlesRequest(), metadata: Self.header)
        ) { response -> SpiffeWorkload_JWTBundlesResponse? in
          for try await message in response.messages { return message }
          return nil
        }
        let jwks = try #require(bundles?.bundles["spiffe://cluster.local"])
        #expect(String(decoding: jwks, as: UTF8.self).contains("\"use\":\"jwt-svid\""))
      }
    }
  }

  @Test func turnedOffTheMethodsAreUnimplemented() async throws {
    var builder = AgentConfigurationBuilder()
    builder.workloadAPI.enabled = false
    try await RunningAgent.with(try builder.build()) { running in
      #expect(running.agent.workloadAPISocketPath == nil)
      try await self.withClient(running.socketPath) { client in
        let off = await #expect(throws: RPCError.self) { _ = try await self.svidMessages(client, count: 1) }
        #expect(off?.code == .unimplemented)
      }
    }
  }

  @Test func aCallerNoRuleNamesIsDenied() async throws {
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/other")
    var builder = AgentConfigurationBuilder()
    builder.identification = .peer
    builder.rules = [WorkloadRule(uid: getuid() + 1, identity: other)]
    try await RunningAgent.with(try builder.build()) { running in
      try await self.withClient(running.socketPath) { client in
        let denied = await #expect(throws: RPCError.self) { _ = try await self.svidMessages(client, count: 1) }
        #expect(denied?.code == .permissionDenied)
      }
    }
  }

  @Test func theOwnSocketHasItsModeAndServesTheWorkloadAPIOnly() async throws {
    let directory = TemporaryDirectory.make()
    var builder = AgentConfigurationBuilder(directory: directory)
    builder.workloadAPI.socketPath = directory + "/workload.sock"
    builder.workloadAPI.socketMode = 0o640
    // Root may give the socket any group; anyone else, its own.
    let group: gid_t = getuid() == 0 ? 4242 : getgid()
    builder.workloadAPI.socketGroup = group
    try await RunningAgent.with(try builder.build()) { running in
      #expect(running.agent.workloadAPISocketPath == directory + "/workload.sock")
      let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/workload.sock")
      #expect((attributes[.posixPermissions] as? Int) == 0o640)
      #expect((attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value == group)
      let messages = try await self.withClient(directory + "/workload.sock") { client in
        try await self.svidMessages(client, count: 1)
      }
      #expect(try self.serial(messages[0]) == running.agent.cache.current.svid?.leaf.serialNumber.description)
      let sds = await #expect(throws: RPCError.self) {
        try await SDSClient.withConnection(socketPath: directory + "/workload.sock") { client in
          try await SDSStream.with(client: client) { stream in
            stream.request(["default"])
            return try await stream.next()
          }
        }
      }
      #expect(sds?.code == .unimplemented)
    }
  }

  @Test func withoutASignerTheJWTMethodsAreUnimplemented() {
    let table = GRPCServiceTable([WorkloadAPISocketService(service: WorkloadAPIService(logger: Logger(label: "test")))])
    #expect(table.route("/SpiffeWorkloadAPI/FetchX509SVID") != nil)
    #expect(table.route("/SpiffeWorkloadAPI/FetchX509Bundles") != nil)
    for method in ["FetchJWTSVID", "FetchJWTBundles", "ValidateJWTSVID"] {
      #expect(table.route("/SpiffeWorkloadAPI/\(method)") == nil, "\(method) is served without a signer")
    }
  }

  @Test func theSocketMustNotBeTheSDSSocketNorServeWhileOff() throws {
    let directory = TemporaryDirectory.make()
    var same = AgentConfigurationBuilder(directory: directory)
    same.workloadAPI.socketPath = same.socketPath
    #expect(throws: ConfigurationError.self) { try same.build() }
    var off = AgentConfigurationBuilder(directory: directory)
    off.workloadAPI.socketPath = directory + "/workload.sock"
    off.workloadAPI.enabled = false
    #expect(throws: ConfigurationError.self) { try off.build() }
  }
}
