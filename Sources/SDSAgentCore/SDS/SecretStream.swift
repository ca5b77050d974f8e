import Logging

/// One open SDS stream of a leased caller, handled one event at a time by its transport: the
/// async loop of the in-process gRPC service or a channel handler of the SDS socket. Not
/// thread-safe; the transport serialises its events and calls `close()` once at the end.
package final class SecretStream<Request: Sendable, Response: Sendable> {
  package typealias Event = SecretDiscoveryService.StreamEvent<Request>
  package typealias Step = SecretDiscoveryService.Step<Response>

  /// The caller's secrets; the transport subscribes to their changes.
  package let cache: SecretCache
  package let logger: Logger
  private let handleEvent: (Event) throws -> Step
  private var onClose: (() -> Void)?

  init(cache: SecretCache, logger: Logger, handle: @escaping (Event) throws -> Step, close: @escaping () -> Void) {
    self.cache = cache
    self.logger = logger
    self.handleEvent = handle
    self.onClose = close
  }

  /// What the stream does next: throws the status that ends it.
  package func handle(_ event: Event) throws -> Step {
    try self.handleEvent(event)
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
