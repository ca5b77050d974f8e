import EnvoySDSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgent
import SDSAgentCore
import ServiceLifecycle

/// The sockets a behaviour test runs over, both served by the agent's one SDS socket server
/// (`SDSSocketServer`): the agent's own socket, with the callers its configuration identifies,
/// and a socket of the test's, where callers have no peer credentials and only a forwarded
/// token can tell them apart.
package enum TestTransport: String, CaseIterable, Sendable, CustomStringConvertible {
  case testSocket = "test-socket"
  case unixSocket = "unix-socket"

  package var description: String { self.rawValue }
}

/// An SDS client on one connection, whichever transport carries it.
package struct SDSTestClient {
  package typealias Request = Envoy_Service_Discovery_V3_DiscoveryRequest
  package typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

  private let openStream:
    (Metadata, SDSStream.Closing, (SDSStream) async throws -> any Sendable) async throws -> any Sendable
  private let fetch: (Request) async throws -> Response
  private let rawFetch: ([UInt8]) async throws -> [UInt8]
  private let rawStream: ([[UInt8]]) async throws -> Int

  init<Transport: ClientTransport>(_ client: GRPCClient<Transport>) {
    let sds = Envoy_Service_Secret_V3_SecretDiscoveryService.Client(wrapping: client)
    self.openStream = { metadata, closing, body in
      try await SDSStream.with(client: sds, metadata: metadata, closing: closing) { try await body($0) }
    }
    self.fetch = { try await sds.fetchSecrets($0) }
    self.rawFetch = { bytes in
      try await client.unary(
        request: ClientRequest(message: bytes),
        descriptor: Envoy_Service_Secret_V3_SecretDiscoveryService.Method.FetchSecrets.descriptor,
        serializer: RawBytesCoder(),
        deserializer: RawBytesCoder(),
        options: .defaults
      ) { try $0.message }
    }
    self.rawStream = { messages in
      try await client.bidirectionalStreaming(
        request: StreamingClientRequest(of: [UInt8].self) { writer in try await writer.write(contentsOf: messages) },
        descriptor: Envoy_Service_Secret_V3_SecretDiscoveryService.Method.StreamSecrets.descriptor,
        serializer: RawBytesCoder(),
        deserializer: RawBytesCoder(),
        options: .defaults
      ) { response in
        var count = 0
        for try await _ in response.messages { count += 1 }
        return count
      }
    }
  }

  /// Opens a `StreamSecrets` call, runs `body`, then closes it.
  package func withStream<Result: Sendable>(
    metadata: Metadata = [:],
    closing: SDSStream.Closing = .graceful,
    _ body: (SDSStream) async throws -> Result
  ) async throws -> Result {
    // The transport's client type is erased behind a closure; its result comes back as is.
    try await self.openStream(metadata, closing) { try await body($0) } as! Result
  }

  package func fetchSecrets(_ request: Request) async throws -> Response {
    try await self.fetch(request)
  }

  /// `FetchSecrets` with a request body of raw bytes, which need not be a valid message.
  package func fetchSecrets(rawRequest bytes: [UInt8]) async throws -> [UInt8] {
    try await self.rawFetch(bytes)
  }

  /// A `StreamSecrets` call that sends `messages` as raw bytes, which need not be valid, then
  /// ends its requests; returns how many responses came before the call ended with OK.
  package func streamSecrets(rawRequests messages: [[UInt8]]) async throws -> Int {
    try await self.rawStream(messages)
  }
}

extension RunningAgent {
  /// Connects to the agent's SDS service over `transport` for the duration of `body`.
  package func withClient<Result: Sendable>(
    over transport: TestTransport,
    _ body: (SDSTestClient) async throws -> Result
  ) async throws -> Result {
    switch transport {
    case .unixSocket:
      let posix = try HTTP2ClientTransport.Posix(
        target: .unixDomainSocket(path: self.socketPath), transportSecurity: .plaintext)
      return try await withGRPCClient(transport: posix) { try await body(SDSTestClient($0)) }
    case .testSocket:
      return try await self.withTestSocket { path in
        let posix = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: posix) { try await body(SDSTestClient($0)) }
      }
    }
  }

  /// Serves the agent's SDS service on a socket of its own in the agent's directory, without
  /// peer credentials, for the duration of `body`.
  private func withTestSocket<Result: Sendable>(
    _ body: (String) async throws -> Result
  ) async throws -> Result {
    let path = self.directory + "/test-\(UInt32.random(in: 0...UInt32.max)).sock"
    let listener = try UnixSocketListener.bind(path: path, mode: 0o600)
    let listening = Milestone()
    let server = SDSSocketServer(
      descriptor: listener.descriptor, service: self.agent.sdsService, peerCredentials: false,
      limits: SDSServerLimits(), logger: Logger(label: "sds-agent-test"), onListening: { listening.reach() },
      onStop: { listener.removeSocketFile() })
    let group = ServiceGroup(services: [server], logger: Logger(label: "sds-agent-test"))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      await listening.wait()
      let result: Swift.Result<Result, any Error>
      do {
        result = .success(try await body(path))
      } catch {
        result = .failure(error)
      }
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()
      return try result.get()
    }
  }
}

/// Bytes passed through as they are.
struct RawBytesCoder: MessageSerializer, MessageDeserializer {
  func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }

  func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
    serializedMessageBytes.withUnsafeBytes { Array($0) }
  }
}
