import EnvoySDSProtos
import GRPCCore
import SDSAgentCore

/// One open `StreamSecrets` call driven request by request, like Envoy does: for the drill and
/// for tests.
package final class SDSStream: Sendable {
  package typealias Request = Envoy_Service_Discovery_V3_DiscoveryRequest
  package typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

  private let requests: AsyncStream<Request>.Continuation
  private let responses: AsyncThrowingStream<Response, any Error>
  private let iterator: SendableIterator

  init(requests: AsyncStream<Request>.Continuation, responses: AsyncThrowingStream<Response, any Error>) {
    self.requests = requests
    self.responses = responses
    self.iterator = SendableIterator(responses.makeAsyncIterator())
  }

  package func send(_ request: Request) {
    self.requests.yield(request)
  }

  /// Sends a request for `names`, optionally acknowledging `response`.
  package func request(_ names: [String], acknowledging response: Response? = nil, nodeID: String = "test-node") {
    var request = Request()
    request.resourceNames = names
    request.typeURL = SecretResource.typeURL
    request.node.id = nodeID
    if let response {
      request.versionInfo = response.versionInfo
      request.responseNonce = response.nonce
    }
    self.send(request)
  }

  /// Rejects `response` (a NACK), keeping `keptVersion`.
  package func reject(_ response: Response, names: [String], keptVersion: String, message: String) {
    var request = Request()
    request.resourceNames = names
    request.typeURL = SecretResource.typeURL
    request.versionInfo = keptVersion
    request.responseNonce = response.nonce
    request.errorDetail.code = 3
    request.errorDetail.message = message
    self.send(request)
  }

  /// The next response; `nil` once the server ended the stream with OK. Throws the stream's
  /// error status.
  package func next() async throws -> Response? {
    try await self.iterator.next()
  }

  /// Closes the request side, as a client that goes away does.
  package func finish() {
    self.requests.finish()
  }

  package enum Closing: Sendable {
    /// Half-close the request side and wait for the server to end the stream.
    case graceful
    /// Cancel the call mid-stream (an RST_STREAM), as a client that crashes does.
    case abrupt
  }

  /// Opens a stream on `client`, runs `body`, then closes it.
  package static func with<Result: Sendable, Transport: ClientTransport>(
    client: Envoy_Service_Secret_V3_SecretDiscoveryService.Client<Transport>,
    metadata: Metadata = [:],
    closing: Closing = .graceful,
    _ body: (SDSStream) async throws -> Result
  ) async throws -> Result {
    let (requests, requestContinuation) = AsyncStream.makeStream(of: Request.self)
    let (responses, responseContinuation) = AsyncThrowingStream.makeStream(of: Response.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        do {
          try await client.streamSecrets(
            request: StreamingClientRequest(metadata: metadata) { writer in
              for await request in requests {
                try await writer.write(request)
              }
            }
          ) { response in
            for try await message in response.messages {
              responseContinuation.yield(message)
            }
          }
          responseContinuation.finish()
        } catch {
          responseContinuation.finish(throwing: error)
        }
      }
      let stream = SDSStream(requests: requestContinuation, responses: responses)
      let result: Result
      do {
        result = try await body(stream)
      } catch {
        group.cancelAll()
        throw error
      }
      requestContinuation.finish()
      switch closing {
      case .graceful:
        try await group.waitForAll()
      case .abrupt:
        group.cancelAll()
      }
      return result
    }
  }
}

/// Lets one task at a time pull from an async iterator held by a `Sendable` object.
private final class SendableIterator: @unchecked Sendable {
  private var iterator: AsyncThrowingStream<SDSStream.Response, any Error>.AsyncIterator

  init(_ iterator: AsyncThrowingStream<SDSStream.Response, any Error>.AsyncIterator) {
    self.iterator = iterator
  }

  func next() async throws -> SDSStream.Response? {
    try await self.iterator.next()
  }
}
