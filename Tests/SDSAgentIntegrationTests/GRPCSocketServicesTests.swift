import EnvoySDSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import ServiceLifecycle
import Testing

@testable import SDSAgent

/// A second gRPC service next to SDS on the real socket server: one grpc-swift client, one
/// connection, both services answering.
@Suite(.timeLimit(.minutes(1))) struct GRPCSocketServicesTests {
  @Test func sdsAndASecondServiceAnswerOnOneConnectionOfTheSocket() async throws {
    try await RunningAgent.with { running in
      let path = running.directory + "/two-services.sock"
      let listener = try UnixSocketListener.bind(path: path, mode: 0o600)
      let listening = Milestone()
      let service = running.agent.sdsService
      let server = SDSSocketServer(
        descriptor: listener.descriptor, services: [SDSSocketService(service: service), EchoSocketService()],
        callers: service.callers, peerCredentials: false, limits: SDSServerLimits(), logger: Logger(label: "test"),
        onListening: { listening.reach() }, onStop: { listener.removeSocketFile() })
      let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
      try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        await listening.wait()
        let transport = try HTTP2ClientTransport.Posix(
          target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { client in
          var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
          request.resourceNames = ["default"]
          request.typeURL = SecretResource.typeURL
          let secrets = try await Envoy_Service_Secret_V3_SecretDiscoveryService.Client(wrapping: client)
            .fetchSecrets(request)
          #expect(try secrets.secrets().map(\.name) == ["default"])
          let echoed = try await client.unary(
            request: ClientRequest(message: [1, 2, 3], metadata: ["x-echo": "on"]),
            descriptor: MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Echo"),
            serializer: Bytes(), deserializer: Bytes(), options: .defaults
          ) { try $0.message }
          #expect(echoed == [1, 2, 3])
          let refused = await #expect(throws: RPCError.self) {
            _ = try await client.unary(
              request: ClientRequest(message: [1]),
              descriptor: MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Echo"),
              serializer: Bytes(), deserializer: Bytes(), options: .defaults
            ) { try $0.message }
          }
          #expect(refused?.code == .invalidArgument)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
      }
    }
  }

  /// Bytes passed through as they are.
  struct Bytes: MessageSerializer, MessageDeserializer {
    func serialize<Output: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Output { Output(message) }

    func deserialize<Input: GRPCContiguousBytes>(_ serializedMessageBytes: Input) throws -> [UInt8] {
      serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
  }
}
