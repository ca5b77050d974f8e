import EnvoySDSProtos
import GRPCCore
import NIOCore
import SDSAgentCore
import SwiftProtobuf

/// What an admitted RPC does next.
enum SDSCallAction {
  case send([UInt8])
  case wait
  case finish(GRPCStatus)
  case sendAndFinish([UInt8])
  /// The answer is made off the event loop (it may read files), then performed on it.
  case later(@Sendable () async -> SDSCallAction)
}

/// An admitted RPC on the SDS socket: decodes each request message, lets the service answer,
/// encodes the answer. Runs on its stream's event loop.
protocol SDSCall: AnyObject {
  /// The secrets whose changes the RPC follows; nil for a unary RPC.
  var followedCache: SecretCache? { get }
  func receive(_ message: ByteBuffer) -> SDSCallAction
  func secretsChanged() -> SDSCallAction
  func requestsEnded() -> SDSCallAction
  /// Releases what the RPC holds; called once, however it ended.
  func close()
}

extension SDSCall {
  static func decode<Request: SwiftProtobuf.Message>(
    _ message: ByteBuffer, as type: Request.Type
  ) -> Result<Request, RPCError> {
    do {
      return .success(try Request(serializedBytes: Array(message.readableBytesView)))
    } catch {
      return .failure(RPCError(code: .invalidArgument, message: "the request message does not decode: \(error)"))
    }
  }
}

/// `StreamSecrets` or `DeltaSecrets`: the service's `SecretStream`, fed by the socket.
final class StreamingSDSCall<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: SDSCall {
  private let stream: SecretStream<Request, Response>

  init(_ stream: SecretStream<Request, Response>) {
    self.stream = stream
  }

  var followedCache: SecretCache? { self.stream.cache }

  func receive(_ message: ByteBuffer) -> SDSCallAction {
    switch Self.decode(message, as: Request.self) {
    case .success(let request): return self.step(.request(request))
    case .failure(let error): return self.step(.requestFailed(error))
    }
  }

  func secretsChanged() -> SDSCallAction { self.step(.secretsChanged) }

  func requestsEnded() -> SDSCallAction { self.step(.requestsEnded) }

  func close() { self.stream.close() }

  private func step(_ event: SecretStream<Request, Response>.Event) -> SDSCallAction {
    do {
      switch try self.stream.handle(event) {
      case .send(let response): return .send(try response.serializedBytes())
      case .wait: return .wait
      case .end: return .finish(.ok)
      }
    } catch {
      return .finish(GRPCStatus(error))
    }
  }
}

/// `FetchSecrets`: one request, one answer from the cache as it is.
final class FetchSDSCall: SDSCall {
  private let service: SecretDiscoveryService
  private var lease: SecretLease?
  private var request: Envoy_Service_Discovery_V3_DiscoveryRequest?
  private var messages = 0

  init(service: SecretDiscoveryService, lease: SecretLease) {
    self.service = service
    self.lease = lease
  }

  var followedCache: SecretCache? { nil }

  func receive(_ message: ByteBuffer) -> SDSCallAction {
    self.messages += 1
    guard self.messages == 1 else {
      return .finish(GRPCStatus(code: .internalError, message: "FetchSecrets takes exactly one request message"))
    }
    switch Self.decode(message, as: Envoy_Service_Discovery_V3_DiscoveryRequest.self) {
    case .success(let request):
      self.request = request
      return .wait
    case .failure(let error):
      return .finish(GRPCStatus(error))
    }
  }

  func secretsChanged() -> SDSCallAction { .wait }

  func requestsEnded() -> SDSCallAction {
    guard let request = self.request, let lease = self.lease else {
      return .finish(GRPCStatus(code: .internalError, message: "FetchSecrets takes exactly one request message"))
    }
    self.lease = nil
    let service = self.service
    return .later {
      do {
        return .sendAndFinish(try await service.fetch(request, lease: lease).serializedBytes())
      } catch {
        return .finish(GRPCStatus(error))
      }
    }
  }

  func close() {
    self.lease?.release()
    self.lease = nil
  }
}
