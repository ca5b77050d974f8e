import EnvoySDSProtos
import Foundation
import GRPCCore
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// What a client sees when a request is too large, too long or not a request at all, over the
/// agent's socket and a test socket of its own (`TestTransport`); the agent keeps serving.
@Suite(.timeLimit(.minutes(2))) struct SDSLimitsTests {
  static let manyNames = (0..<100_000).map { "unknown-resource-\($0)" }

  @Test(arguments: TestTransport.allCases) func tooManyNamesAreRefusedWithAShortStatus(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        try await client.withStream { stream in
          stream.request(Self.manyNames)
          let error = try await #require(throws: RPCError.self) { _ = try await stream.next() }
          print("status for 100,000 names over \(transport): \(error.message.utf8.count) bytes")
          #expect(error.code == .invalidArgument)
          #expect(error.message.contains("at most \(SDSRequest.maximumResourceNames)"))
          #expect(error.message.utf8.count < 256)
        }
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.resourceNames = Self.manyNames
        let error = try await #require(throws: RPCError.self) { _ = try await client.fetchSecrets(request) }
        #expect(error.code == .invalidArgument)
      }
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(secrets.map(\.name) == ["default"])
    }
  }

  @Test(arguments: TestTransport.allCases) func unknownNamesAreEchoedCutAndCounted(
    over transport: TestTransport
  ) async throws {
    let names = (0..<SDSRequest.maximumResourceNames).map { "\($0)-" + String(repeating: "n", count: 2000) }
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        try await client.withStream { stream in
          stream.request(names)
          let error = try await #require(throws: RPCError.self) { _ = try await stream.next() }
          print("status for 128 unknown names of 2 KB over \(transport): \(error.message.utf8.count) bytes")
          #expect(error.code == .notFound)
          #expect(error.message.contains("and \(SDSRequest.maximumResourceNames - 4) more"))
          #expect(error.message.utf8.count < 2048)
        }
        try await client.withStream { stream in
          stream.request(["default", String(repeating: "x", count: SDSRequest.maximumNameLength + 1)])
          let error = try await #require(throws: RPCError.self) { _ = try await stream.next() }
          #expect(error.code == .invalidArgument)
          #expect(error.message.contains("at most \(SDSRequest.maximumNameLength) bytes"))
        }
      }
    }
  }

  @Test(arguments: TestTransport.allCases) func aMalformedMessageOnAStreamEndsItWithInvalidArgument(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x12]
        let error = try await #require(throws: RPCError.self) {
          _ = try await client.streamSecrets(rawRequests: [garbage])
        }
        #expect(error.code == .invalidArgument)
        // A stream whose client just ends its requests still ends with OK.
        #expect(try await client.streamSecrets(rawRequests: []) == 0)
      }
      #expect(running.agent.counters[.rejectedRequests] == 1)
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(secrets.map(\.name) == ["default"])
    }
  }

  @Test func aRequestOverTheMessageLimitEndsItsCallAndTheAgentKeepsServing() async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: .unixSocket) { client in
        let oversized = [UInt8](repeating: 0x0A, count: 4 * 1024 * 1024 + 1)
        let fetch = try await #require(throws: RPCError.self) {
          _ = try await client.fetchSecrets(rawRequest: oversized)
        }
        let stream = try await #require(throws: RPCError.self) {
          _ = try await client.streamSecrets(rawRequests: [oversized])
        }
        #expect(fetch.code == .resourceExhausted, "\(fetch)")
        #expect(stream.code == .resourceExhausted, "\(stream)")
      }
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(secrets.map(\.name) == ["default"])
    }
  }

  @Test func aHugeNodeIDOrVersionIsKeptShortForDebugStreams() async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: .testSocket) { client in
        try await client.withStream { stream in
          let huge = String(repeating: "v", count: 1_000_000)
          stream.request(["default"], nodeID: huge)
          let first = try #require(try await stream.next())
          var ack = Envoy_Service_Discovery_V3_DiscoveryRequest()
          ack.resourceNames = ["default"]
          ack.typeURL = SecretResource.typeURL
          ack.versionInfo = huge
          ack.responseNonce = first.nonce
          stream.send(ack)
          await running.agent.counters.waitUntil { $0[.acks] == 1 }
          let shown = try #require(running.agent.streams.streams.first)
          #expect(try #require(shown.nodeID).utf8.count < 256)
          #expect(try #require(shown.lastAckedVersion).utf8.count < 256)
        }
      }
    }
  }
}
