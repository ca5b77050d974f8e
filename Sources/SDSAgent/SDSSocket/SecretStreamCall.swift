import GRPCCore
import NIOCore
import SDSAgentCore
import SwiftProtobuf

/// Any of the services' calls (`StreamSecrets`, `DeltaSecrets`, `FetchSecrets`, the Workload
/// API's) on the socket: decodes each request message for its `SecretStream`, encodes each
/// response.
///
/// Not generic itself: a generic class's methods run unspecialized behind `any GRPCSocketCall`,
/// looking up the metadata of their event and step types on every push. The closure made by the
/// generic `init` is specialized where the call is opened.
final class SecretStreamCall: GRPCSocketCall {
  private let handleEvent: (Event) throws(RPCError) -> Step
  private let affected: (SecretChanges) -> Bool
  private let closeStream: () -> Void
  let followedCache: SecretCache?
  let incremental: Bool

  init<Request: SwiftProtobuf.Message, Response: SocketResponse>(
    _ stream: SecretStream<Request, Response>, incremental: Bool = false
  ) {
    self.handleEvent = { event throws(RPCError) in try Self.encoded(try stream.handle(Self.decoded(event))) }
    self.affected = { stream.isAffected(by: $0) }
    self.closeStream = { stream.close() }
    self.followedCache = stream.cache
    self.incremental = incremental
  }

  func handle(_ event: Event) throws(RPCError) -> Step {
    try self.handleEvent(event)
  }

  func isAffected(by changes: SecretChanges) -> Bool { self.affected(changes) }

  func close() { self.closeStream() }

  private static func decoded<Request: SwiftProtobuf.Message>(
    _ event: Event
  ) -> SecretDiscoveryService.StreamEvent<Request> {
    switch event {
    case .request(let message):
      do {
        return .request(try Request(serializedBytes: Array(message.readableBytesView)))
      } catch {
        return .requestFailed(
          RPCError(code: .invalidArgument, message: "the request message does not decode: \(error)"))
      }
    case .requestFailed(let error): return .requestFailed(error)
    case .secretsChanged: return .secretsChanged
    case .requestsEnded: return .requestsEnded
    }
  }

  private static func encoded<Response: SocketResponse>(
    _ step: SecretDiscoveryService.Step<Response>
  ) throws(RPCError) -> Step {
    do {
      switch step {
      case .send(let response): return .send(try response.socketMessage())
      case .sendAndEnd(let response): return .sendAndEnd(try response.socketMessage())
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
