import GRPCCore
import Logging

/// One open SDS call of a leased caller, handled one event at a time by its transport (a
/// channel handler of the SDS socket). Not thread-safe; the transport serialises its events and
/// calls `close()` once at the end.
package final class SecretStream<Request: Sendable, Response: Sendable> {
  package typealias Event = SecretDiscoveryService.StreamEvent<Request>
  package typealias Step = SecretDiscoveryService.Step<Response>

  /// The caller's secrets, whose changes the transport feeds the stream as `secretsChanged`;
  /// nil for a unary call, which answers from the cache as it is.
  package let cache: SecretCache?
  package let logger: Logger
  @usableFromInline let handleEvent: (Event) throws -> Step
  private let affected: ((SecretChanges) -> Bool)?
  private var onClose: (() -> Void)?

  init(
    cache: SecretCache?, logger: Logger, handle: @escaping (Event) throws -> Step,
    affected: ((SecretChanges) -> Bool)? = nil, close: @escaping () -> Void
  ) {
    self.cache = cache
    self.logger = logger
    self.handleEvent = handle
    self.affected = affected
    self.onClose = close
  }

  /// Whether a change of these kinds of the followed secrets is worth a `secretsChanged` event:
  /// false only where the stream knows none of its secrets is of them.
  package func isAffected(by changes: SecretChanges) -> Bool {
    self.affected?(changes) ?? true
  }

  /// What the stream does next: throws the status that ends it. Inlinable, so that a transport
  /// calls it specialized, without looking up generic metadata on every push.
  @inlinable package func handle(_ event: Event) throws(RPCError) -> Step {
    do {
      return try self.handleEvent(event)
    } catch {
      throw RPCError(ending: error)
    }
  }

  /// Releases the caller's lease and unregisters the stream; later calls do nothing.
  package func close() {
    let onClose = self.onClose
    self.onClose = nil
    onClose?()
  }

  deinit {
    self.onClose?()
  }
}

extension RPCError {
  /// The status an error ends its call with: the service's own statuses as they are, any other
  /// error without its details.
  @usableFromInline package init(ending error: any Error) {
    switch error {
    case let error as RPCError: self = error
    case let error as any RPCErrorConvertible: self.init(error)
    default: self.init(code: .internalError, message: "the agent failed to answer")
    }
  }
}
