import EnvoySDSProtos
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import SDSAgent
import SDSAgentCore

/// The transports a behaviour test runs over: in-process for speed, the real Unix socket for
/// truth (as grpc-swift-nio-transport runs its suite over each transport).
package enum TestTransport: String, CaseIterable, Sendable, CustomStringConvertible {
  case inProcess = "in-process"
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
    case .inProcess:
      let inProcess = InProcessTransport()
      let server = GRPCServer(
        transport: inProcess.server, services: [self.agent.sdsService], interceptors: [CallerEvidenceInterceptor()])
      return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.serve() }
        defer { server.beginGracefulShutdown() }
        return try await withGRPCClient(transport: inProcess.client) { try await body(SDSTestClient($0)) }
      }
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
