import Logging

extension SecretDiscoveryService {
  /// One stream's state between events. Events are handled by synchronous, non-inlined code so
  /// that the stream's async frame, which lives as long as the stream, stays small.
  struct Session<Machine: Sendable> {
    var machine: Machine
    let streamID: UInt64
    let rpc: StreamRegistry.Method
    /// The service's logger; `logger` adds the stream's metadata.
    let serviceLogger: Logger
    let cache: SecretCache
    let caller: Caller
    /// Renews the identity at once: its certificate was found expired.
    let noticeExpired: @Sendable () -> Void
    /// The Envoy node the stream's first request named.
    var nodeID: String?
    /// The on-demand names it holds or was refused.
    var onDemand = OnDemandHold()

    /// The stream's logger, with its metadata, made when something is logged: a logger with
    /// metadata of its own would cost every open stream about a kilobyte.
    var logger: Logger {
      var logger = self.serviceLogger
      logger[metadataKey: "rpc"] = "\(self.rpc.rawValue)"
      logger[metadataKey: "stream"] = "\(self.streamID)"
      logger[metadataKey: "identity"] = "\(self.caller.identity)"
      if let nodeID = self.nodeID { logger[metadataKey: "node"] = "\(nodeID)" }
      return logger
    }

    /// Logs at debug level with the stream's metadata; makes nothing unless debug is on.
    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
      guard self.serviceLogger.logLevel <= .debug else { return }
      self.logger.debug(message(), metadata: metadata())
    }
  }

  /// An open stream's service and session in one object, which its `SecretStream`'s closures
  /// share: no stream keeps copies of the service (a few hundred bytes each) or a box of its own
  /// for the session.
  final class OpenStream<Machine: Sendable> {
    let service: SecretDiscoveryService
    var session: Session<Machine>
    let lease: SecretLease

    init(service: SecretDiscoveryService, session: Session<Machine>, lease: SecretLease) {
      self.service = service
      self.session = session
      self.lease = lease
    }

    func close() {
      self.service.close(self.session)
      self.lease.release()
    }
  }
}
