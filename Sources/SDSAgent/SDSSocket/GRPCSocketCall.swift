import GRPCCore
import NIOCore
import SDSAgentCore

/// An admitted call on the SDS socket, of any service it serves, as its stream's handler sees
/// it: events with the request messages still encoded, steps with the responses encoded and
/// framed as gRPC messages (flag, length, bytes). Runs on its stream's event loop.
protocol GRPCSocketCall: AnyObject {
  typealias Event = SecretDiscoveryService.StreamEvent<ByteBuffer>
  typealias Step = SecretDiscoveryService.Step<ByteBuffer>

  /// The secrets whose changes the call follows; nil for a unary call.
  var followedCache: SecretCache? { get }
  /// Whether each response carries changes only (`DeltaSecrets`), so that none may replace
  /// another while the stream cannot be written.
  var incremental: Bool { get }
  /// Whether a change of these kinds of the followed secrets concerns the call: if not, it gets
  /// no `secretsChanged` event for it.
  func isAffected(by changes: SecretChanges) -> Bool
  /// What the call does next; throws the status that ends it.
  func handle(_ event: Event) throws(RPCError) -> Step
  /// Releases what the call holds; called once, however it ended.
  func close()
}
