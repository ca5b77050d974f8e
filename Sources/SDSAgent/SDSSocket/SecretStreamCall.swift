import GRPCCore
import NIOCore
import SDSAgentCore
import SwiftProtobuf

/// Any of the service's calls (`StreamSecrets`, `DeltaSecrets`, `FetchSecrets`) on the socket:
/// decodes each request message for its `SecretStream`, encodes each response.
final class SecretStreamCall<Request: SwiftProtobuf.Message, Response: SocketResponse>: GRPCSocketCall {
  private let stream: SecretStream<Request, Response>
  let incremental: Bool

  init(_ stream: SecretStream<Request, Response>, incremental: Bool = false) {
    self.stream = stream
    self.incremental = incremental
  }

  var followedCache: SecretCache? { self.stream.cache }

  func handle(_ event: Event) throws(RPCError) -> Step {
    let decoded: SecretStream<Request, Response>.Event
    switch event {
    case .request(let message):
      do {
        decoded = .request(try Request(serializedBytes: Array(message.readableBytesView)))
      } catch {
        decoded = .requestFailed(
          RPCError(code: .invalidArgument, message: "the request message does not decode: \(error)"))
      }
    case .requestFailed(let error): decoded = .requestFailed(error)
    case .secretsChanged: decoded = .secretsChanged
    case .requestsEnded: decoded = .requestsEnded
    }
    return try Self.encoded(try self.stream.handle(decoded))
  }

  func close() { self.stream.close() }

  private static func encoded(_ step: SecretStream<Request, Response>.Step) throws(RPCError) -> Step {
    do {
      switch step {
      case .send(let response): return .send(try response.socketBytes())
      case .sendAndEnd(let response): return .sendAndEnd(try response.socketBytes())
      case .wait: return .wait
      case .end: return .end
      case .later(let answer):
        return .later { () async throws(RPCError) -> Step in try Self.encoded(try await answer()) }
      }
    } catch {
      throw RPCError(ending: error)
    }
  }
}
