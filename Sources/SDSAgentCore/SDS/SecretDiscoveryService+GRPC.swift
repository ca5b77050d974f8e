import EnvoySDSProtos
import GRPCCore
import Logging
import ServiceLifecycle

/// The grpc-swift service conformance: each RPC as an async loop over a `SecretStream`. The SDS
/// socket has its own HTTP/2 path (`SDSSocketServer`); this one serves the in-process transport
/// of the tests, which hands the caller's evidence over in `ServerContext.transportSpecific`.
extension SecretDiscoveryService {
  package func streamSecrets(
    request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
    response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
    context: ServerContext
  ) async throws {
    let stream = self.openStreamSecrets(try await self.lease(context))
    defer { stream.close() }
    try await self.serve(request, response, stream: stream)
  }

  package func deltaSecrets(
    request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
    response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
    context: ServerContext
  ) async throws {
    let stream = self.openDeltaSecrets(try await self.lease(context))
    defer { stream.close() }
    try await self.serve(request, response, stream: stream)
  }

  package func fetchSecrets(
    request: Envoy_Service_Discovery_V3_DiscoveryRequest,
    context: ServerContext
  ) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
    try await self.fetch(request, lease: try await self.lease(context))
  }

  func lease(_ context: ServerContext) async throws -> SecretLease {
    try await self.leases.lease(for: context.transportSpecific as? CallerEvidence)
  }

  /// Runs one stream: its requests and the cache's changes become events, `handle` decides
  /// each one's answer.
  func serve<Request: Sendable, Response: Sendable>(
    _ requests: RPCAsyncSequence<Request, any Error>,
    _ response: RPCWriter<Response>,
    stream: SecretStream<Request, Response>
  ) async throws {
    let (cache, logger) = (stream.cache, stream.logger)
    let (events, continuation) = AsyncStream.makeStream(of: StreamEvent<Request>.self)
    let subscription = cache?.subscribe { continuation.yield(.secretsChanged) }
    defer { subscription?.cancel() }
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        defer { continuation.finish() }
        do {
          for try await message in requests {
            continuation.yield(.request(message))
          }
        } catch let error as RPCError where error.code == .invalidArgument {
          // The deserializer's verdict on a message that does not decode; the client is still
          // there to be told, as FetchSecrets tells it.
          continuation.yield(.requestFailed(error))
          return
        } catch {
          // The client reset the stream or went away; there is nobody left to answer.
          logger.debug("SDS stream closed by the client", metadata: ["reason": "\(error)"])
        }
        continuation.yield(.requestsEnded)
      }
      defer { group.cancelAll() }
      // On graceful shutdown the stream ends cleanly so the server can stop; Envoy reconnects
      // to the next agent and keeps its current secrets meanwhile.
      try await withGracefulShutdownHandler {
        loop: for await event in events {
          var step = try stream.handle(event)
          while case .later(let answer) = step { step = try await answer() }
          switch step {
          case .send(let message): try await response.write(message)
          case .wait, .later: continue
          case .end: break loop
          case .sendAndEnd(let message):
            try await response.write(message)
            break loop
          }
        }
      } onGracefulShutdown: {
        continuation.finish()
      }
    }
  }
}
