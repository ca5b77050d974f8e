import Logging
import NIOCore
import NIOExtras
import NIOHTTP2
import NIOPosix
import SDSAgentCore
import ServiceLifecycle

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Serves Envoy's `SecretDiscoveryService`, and any other `GRPCSocketService` in its table, on
/// the agent's Unix socket: gRPC over HTTP/2 written directly on swift-nio-http2, one
/// `GRPCStream` per stream on its connection's handler, and no task or channel per stream. Stops gracefully: GOAWAY, every stream
/// ended with `OK`, connections closed once their streams are.
package struct SDSSocketServer: Service, CustomStringConvertible {
  /// A bound, listening socket; the server takes ownership of it.
  let descriptor: Int32
  /// The services requests are routed to, by the name in their `:path`.
  let services: GRPCServiceTable
  /// Admits each caller, whichever service it asked for.
  let callers: any SecretLeaseProvider
  /// Whether callers are identified by `SO_PEERCRED`.
  let peerCredentials: Bool
  var limits = SDSServerLimits()
  let logger: Logger
  /// Called once the socket accepts connections.
  var onListening: @Sendable () -> Void = {}
  var onStop: @Sendable () -> Void = {}

  /// A server of the SDS service alone.
  package init(
    descriptor: Int32, service: SecretDiscoveryService, peerCredentials: Bool, limits: SDSServerLimits,
    logger: Logger, onListening: @escaping @Sendable () -> Void = {}, onStop: @escaping @Sendable () -> Void = {}
  ) {
    self.init(
      descriptor: descriptor, services: [SDSSocketService(service: service)], callers: service.callers,
      peerCredentials: peerCredentials, limits: limits, logger: logger, onListening: onListening, onStop: onStop)
  }

  init(
    descriptor: Int32, services: [any GRPCSocketService], callers: any SecretLeaseProvider, peerCredentials: Bool,
    limits: SDSServerLimits, logger: Logger, onListening: @escaping @Sendable () -> Void = {},
    onStop: @escaping @Sendable () -> Void = {}
  ) {
    self.descriptor = descriptor
    self.services = GRPCServiceTable(services)
    self.callers = callers
    self.peerCredentials = peerCredentials
    self.limits = limits
    self.logger = logger
    self.onListening = onListening
    self.onStop = onStop
  }

  package var description: String { "SDSSocketServer(fd \(self.descriptor))" }

  package func run() async throws {
    defer { self.onStop() }
    let group = MultiThreadedEventLoopGroup.singleton
    let quiescing = ServerQuiescingHelper(group: group)
    let channel = try await ServerBootstrap(group: group)
      .serverChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
        }
      }
      // A rotation writes to every stream of a connection in one tick; past the high mark the
      // streams hold their responses until the socket drains below the low one.
      .childChannelOption(
        ChannelOptions.writeBufferWaterMark, value: .init(low: Self.socketBufferLow, high: Self.socketBufferHigh)
      )
      .childChannelInitializer { self.initialize($0) }
      .withBoundSocket(self.descriptor)
      .get()
    self.onListening()
    let stopped = channel.eventLoop.makePromise(of: Void.self)
    await withGracefulShutdownHandler {
      await withTaskCancellationHandler {
        try? await channel.closeFuture.get()
      } onCancel: {
        channel.close(promise: nil)
      }
    } onGracefulShutdown: {
      quiescing.initiateShutdown(promise: stopped)
    }
    quiescing.initiateShutdown(promise: stopped)
    try? await stopped.futureResult.get()
  }

  private func initialize(_ channel: any Channel) -> EventLoopFuture<Void> {
    self.credentials(of: channel).flatMapThrowing { credentials in
      let connection = GRPCConnectionHandler(
        credentials: credentials, services: self.services, callers: self.callers, limits: self.limits,
        logger: self.logger)
      let pipeline = channel.pipeline.syncOperations
      try pipeline.addHandlers(
        IdleStateHandler(readTimeout: self.limits.silentPeerTimeout), SilentPeerCloser(), FlushCoalescer(),
        NIOHTTP2Handler(
          mode: .server, frameDelegate: connection,
          connectionConfiguration: Self.connectionConfiguration(self.limits),
          streamConfiguration: Self.streamConfiguration(self.limits)))
      try pipeline.addHandler(connection)
    }
  }

  private func credentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
    guard self.peerCredentials, let socket = channel as? any SocketOptionProvider else {
      return channel.eventLoop.makeSucceededFuture(nil)
    }
    return socket.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
      .map { (raw: KernelPeerCredentials) -> PeerCredentials? in
        PeerCredentials(pid: raw.pid, uid: raw.uid, gid: raw.gid)
      }
      .recover { _ in nil }
  }

  /// Bytes written to a connection's socket and not yet taken by the kernel, past which its
  /// streams stop writing.
  static let socketBufferHigh = 1024 * 1024
  static let socketBufferLow = 512 * 1024

  static func connectionConfiguration(_ limits: SDSServerLimits) -> NIOHTTP2Handler.ConnectionConfiguration {
    var configuration = NIOHTTP2Handler.ConnectionConfiguration()
    configuration.initialSettings = [
      HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maximumStreamsPerConnection),
      HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoderLimit.maximumHeaderListSize),
    ]
    return configuration
  }

  static func streamConfiguration(_ limits: SDSServerLimits) -> NIOHTTP2Handler.StreamConfiguration {
    var configuration = NIOHTTP2Handler.StreamConfiguration()
    // NIO reserves room for `maximumCount` timestamps on every connection from its start (the
    // backstop's 16,384 over 30 s took 128 KiB per connection); one stream limit's worth per
    // second lets a client cancel all its streams at once, and `GRPCConnectionHandler` counts
    // the 30 s backstop (`maximumResets`) itself.
    configuration.streamResetFrameRateLimit.maximumCount = limits.maximumStreamsPerConnection
    configuration.streamResetFrameRateLimit.windowLength = .seconds(1)
    return configuration
  }
}

/// The largest header block a request may carry (a forwarded token fits many times over).
enum HPACKDecoderLimit {
  static let maximumHeaderListSize = 16 * 1024
}
