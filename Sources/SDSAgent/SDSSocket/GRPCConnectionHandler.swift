import Logging
import NIOCore
import NIOHTTP2
import SDSAgentCore

/// The connection-level part of the SDS socket, after the HTTP/2 handler: its streams
/// (`GRPCStream`, one per HTTP/2 stream, with no channel of their own:
/// `GRPCConnectionHandler+Streams.swift`), keepalive pings, closing idle connections, the
/// rapid-reset guard, the cap on responses held unsent, and the GOAWAY of a graceful stop.
final class GRPCConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  /// The kernel's credentials of the connected process, if the agent identifies callers by them.
  let credentials: PeerCredentials?
  let services: GRPCServiceTable
  /// Admits each caller before its call opens, whichever service it asked for.
  let callers: any SecretLeaseProvider
  let limits: SDSServerLimits
  private let logger: Logger
  var context: ChannelHandlerContext?
  /// The open streams, by ID.
  var streams: [HTTP2StreamID: GRPCStream] = [:]
  /// Whether the socket takes writes (below its high watermark).
  var isWritable = true
  private var openStreams = 0
  private var highestStreamID = HTTP2StreamID.rootStream
  private var quiescing = false
  private var idleTimer: Scheduled<Void>?
  private var keepalive: RepeatedTask?
  private var resetWindowStart = NIODeadline.now()
  private var unservedResets = 0
  private var resets = 0
  /// Response bytes the streams hold or wrote that have not left for the socket.
  private var unsentBytes = 0
  private var overUnsentCap: Scheduled<Void>?
  private var closing = false
  /// Nonzero while a stream flushes what it wrote (see `flushStream`).
  var streamFlushes = 0
  /// While a change is handed to the streams, their flushes wait for one at the end.
  var flushesDeferred = false
  var flushDeferred = false
  /// The caches the streams follow, by identity (`GRPCConnectionHandler+Followers.swift`).
  var followed: [ObjectIdentifier: FollowedCache] = [:]

  init(
    credentials: PeerCredentials?, services: GRPCServiceTable, callers: any SecretLeaseProvider,
    limits: SDSServerLimits, logger: Logger
  ) {
    self.credentials = credentials
    self.services = services
    self.callers = callers
    self.limits = limits
    self.logger = logger
  }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    self.isWritable = context.channel.isWritable
    let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
    self.keepalive = context.eventLoop.scheduleRepeatedTask(
      initialDelay: self.limits.keepaliveTime, delay: self.limits.keepaliveTime
    ) { _ in
      handler.value.ping()
    }
    self.scheduleIdleClose()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.closeAllStreams()
    self.unfollowAll()
    self.keepalive?.cancel()
    self.idleTimer?.cancel()
    self.overUnsentCap?.cancel()
    self.context = nil
    context.fireChannelInactive()
  }

  /// A connection error (the HTTP/2 handler has sent GOAWAY) closes the connection; a stream's
  /// error is its stream's business. As grpc-swift-nio-transport decides it.
  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    switch error {
    case is NIOHTTP2Errors.StreamError:
      return
    case is NIOHTTP2Errors.NoSuchStream where self.quiescing:
      // A client opening a stream as the GOAWAY of a graceful stop crosses it.
      return
    case is NIOHTTP2Errors.NoSuchStream where self.streamFlushes > 0:
      // A stream answered a request that arrived with the client's RST_STREAM: the write is
      // refused and dropped, and the stream closes. The client ended that stream, not this
      // connection, whose other streams go on (Envoy multiplexes all its SDS streams on one).
      return
    default:
      self.logger.debug(
        "closing an SDS connection after an HTTP/2 error",
        metadata: ["error": "\(BoundedText(String(describing: error)))"])
      context.close(promise: nil)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    // Several events a stream: a type's identity is compared before the one cast that
    // matches, as a failed `as?` from `Any` costs hundreds of instructions.
    let kind = type(of: event)
    if kind == NIOHTTP2WindowUpdatedEvent.self, let window = event as? NIOHTTP2WindowUpdatedEvent {
      self.replenish(window)
    } else if kind == StreamClosedEvent.self, let closed = event as? StreamClosedEvent {
      self.streams.removeValue(forKey: closed.streamID)?.closed()
    } else if kind == ChannelShouldQuiesceEvent.self {
      self.finishAllStreams()
      self.quiesce()
    } else {
      context.fireUserInboundEventTriggered(event)
    }
  }

  // MARK: - Streams

  func streamOpened(_ streamID: HTTP2StreamID) {
    self.openStreams += 1
    if streamID > self.highestStreamID { self.highestStreamID = streamID }
    self.idleTimer?.cancel()
    self.idleTimer = nil
  }

  /// A stream closed; `reset` if the client reset it before its call ended, `unserved` if
  /// also before it got a response.
  func streamClosed(reset: Bool, unserved: Bool) {
    self.openStreams -= 1
    if reset { self.countReset(unserved: unserved) }
    if self.openStreams == 0 {
      if self.quiescing {
        self.context?.close(promise: nil)
      } else {
        self.scheduleIdleClose()
      }
    }
  }

  /// The rapid-reset guard, and a backstop on resets of any kind. (swift-nio-http2's own
  /// limit on RST_STREAM frames reserves room for its count per connection up front, so it
  /// gets only one stream limit's worth per second; see `SDSSocketServer.streamConfiguration`.)
  private func countReset(unserved: Bool) {
    let now = NIODeadline.now()
    if now - self.resetWindowStart > self.limits.resetWindow {
      self.resetWindowStart = now
      self.unservedResets = 0
      self.resets = 0
    }
    self.resets += 1
    if unserved { self.unservedResets += 1 }
    let message: Logger.Message
    if unserved, self.unservedResets == self.limits.maximumUnservedResets + 1 {
      message = "closing an SDS connection that reset streams before they were served (rapid reset)"
    } else if self.resets == self.limits.maximumResets + 1 {
      message = "closing an SDS connection that reset more streams than its limit"
    } else {
      return
    }
    self.logger.warning(
      message,
      metadata: [
        "resets": "\(unserved ? self.unservedResets : self.resets)", "window": "\(self.limits.resetWindow)",
        "peer": "\(self.credentials.map(\.description) ?? "unknown")",
      ])
    self.goAway(.enhanceYourCalm)
    self.context?.close(promise: nil)
  }

  // MARK: - Unsent responses

  /// A stream holds or wrote `delta` more bytes (fewer if negative) that have not left for the
  /// socket. A connection over `maximumUnsentBytesPerConnection` for `unsentGrace`, or ever over
  /// twice that, is closed: its client does not take what it asks for.
  func unsentChanged(by delta: Int) {
    self.unsentBytes += delta
    let limit = self.limits.maximumUnsentBytesPerConnection
    guard self.unsentBytes > limit else {
      if let overUnsentCap = self.overUnsentCap {
        overUnsentCap.cancel()
        self.overUnsentCap = nil
      }
      return
    }
    if self.unsentBytes > 2 * limit {
      self.closeOverUnsentCap()
    } else if self.overUnsentCap == nil, let context = self.context {
      let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
      self.overUnsentCap = context.eventLoop.scheduleTask(in: self.limits.unsentGrace) {
        handler.value.closeOverUnsentCap()
      }
    }
  }

  private func closeOverUnsentCap() {
    guard !self.closing, self.unsentBytes > self.limits.maximumUnsentBytesPerConnection,
      let context = self.context
    else { return }
    self.closing = true
    self.logger.warning(
      "closing an SDS connection whose client does not take its responses",
      metadata: [
        "unsent_bytes": "\(self.unsentBytes)", "limit": "\(self.limits.maximumUnsentBytesPerConnection)",
        "peer": "\(self.credentials.map(\.description) ?? "unknown")",
      ])
    self.goAway(.enhanceYourCalm)
    context.close(promise: nil)
  }

  // MARK: - Connection

  private func ping() {
    guard let context = self.context else { return }
    context.writeAndFlush(
      self.wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(), ack: false))), promise: nil
    )
  }

  private func scheduleIdleClose() {
    guard let context = self.context else { return }
    let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
    self.idleTimer?.cancel()
    self.idleTimer = context.eventLoop.scheduleTask(in: self.limits.maximumIdleTime) {
      handler.value.closeIdle()
    }
  }

  private func closeIdle() {
    guard self.openStreams == 0, let context = self.context else { return }
    self.goAway(.noError)
    context.close(promise: nil)
  }

  /// The agent is stopping: streams are ending (each got the event before this handler), no
  /// new ones are accepted, and the connection closes once the last one ended.
  private func quiesce() {
    guard !self.quiescing, let context = self.context else { return }
    self.quiescing = true
    self.goAway(.noError)
    if self.openStreams == 0 {
      context.close(promise: nil)
      return
    }
    context.eventLoop.scheduleTask(in: self.limits.shutdownGrace) { [channel = context.channel] in
      channel.close(promise: nil)
    }
  }

  private func goAway(_ code: HTTP2ErrorCode) {
    guard let context = self.context else { return }
    let frame = HTTP2Frame(
      streamID: .rootStream, payload: .goAway(lastStreamID: self.highestStreamID, errorCode: code, opaqueData: nil))
    context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
  }
}
