import NIOCore
import NIOHPACK
import NIOHTTP2

/// The `StreamSecrets` streams of one `LeanStreamClient` connection, on its event loop. They open
/// once the server's SETTINGS frame has been read (`NIOHTTP2Handler` has acknowledged it by
/// then): swift-nio-http2 allows a client 100 streams until it acknowledges, and closes the
/// connection on the 101st. Each stream's gRPC messages are counted across DATA frames and
/// reported to the tracker; every inbound window is refilled once half of it is used.
final class LeanStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  /// The connection's and each stream's inbound window, as grpc-swift's client sets them.
  static let window = 8 * 1024 * 1024
  static let settings = nioDefaultSettings + [HTTP2Setting(parameter: .initialWindowSize, value: window)]

  private enum Phase {
    case unopened, open, ended
  }

  private struct Stream {
    var phase = Phase.unopened
    var messages = GRPCMessageCounter()
    var responses = 0
  }

  private let connection: LeanStreamClient.Connection
  private let tracker: any StreamObserver
  private let head: HPACKHeaders
  /// The gRPC-framed requests for `default` and `ROOTCA`, which alternate.
  private let requests: [ByteBuffer]
  private var streams: [Stream]
  private var opened = 0
  private var settingsRead = false
  private var nextOpening: Scheduled<Void>?
  private var lastError: (any Error)?

  init(_ connection: LeanStreamClient.Connection, requests: [[UInt8]], tracker: any StreamObserver) {
    self.connection = connection
    self.tracker = tracker
    self.head = LeanGRPCRequest.head(path: LeanStreamClient.path)
    self.requests = requests.map(LeanGRPCRequest.body)
    self.streams = Array(repeating: Stream(), count: connection.count)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = self.unwrapInboundIn(data)
    switch frame.payload {
    case .settings(.settings):
      guard !self.settingsRead else { return }
      self.settingsRead = true
      self.openDueStreams(context: context)
    case .headers(let headers) where headers.endStream:
      let status = headers.headers.first(name: "grpc-status") ?? "none"
      self.end(frame.streamID, BenchError(.server, "the server ended the stream (grpc-status \(status))"))
    case .data(let body):
      if case .byteBuffer(let bytes) = body.data { self.received(bytes, on: frame.streamID) }
      if body.endStream { self.end(frame.streamID, BenchError(.server, "the server ended the stream")) }
    case .rstStream(let code):
      self.end(frame.streamID, BenchError(.server, "the server reset the stream (\(code))"))
    case .goAway(let lastStreamID, let code, _):
      let error = BenchError(.server, "the server sent GOAWAY (\(code))")
      for index in self.streams.indices where Self.streamID(index) > lastStreamID {
        self.end(Self.streamID(index), error)
      }
    default:
      break
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let window = event as? NIOHTTP2WindowUpdatedEvent, let size = window.inboundWindowSize,
      size <= Self.window / 2, window.streamID == .rootStream || self.isOpen(window.streamID)
    {
      let update = HTTP2Frame(
        streamID: window.streamID, payload: .windowUpdate(windowSizeIncrement: Self.window - size))
      context.writeAndFlush(self.wrapOutboundOut(update), promise: nil)
    }
    context.fireUserInboundEventTriggered(event)
  }

  /// A stream error names its stream, which is reported failed. Any other error closes the
  /// connection (swift-nio-http2 leaves that to its user, as for a connection error it has sent
  /// GOAWAY for), and `channelInactive` reports every stream still open with it.
  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if let streamError = error as? NIOHTTP2Errors.StreamError {
      self.end(streamError.streamID, BenchError(.server, "the stream failed", cause: streamError.baseError))
    } else {
      self.lastError = error
      context.close(promise: nil)
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.nextOpening?.cancel()
    self.nextOpening = nil
    let error = BenchError(.server, "the connection closed", cause: self.lastError)
    for index in self.streams.indices { self.end(Self.streamID(index), error) }
    context.fireChannelInactive()
  }

  /// Opens every stream whose time has come, then waits on the event loop for the next one's.
  private func openDueStreams(context: ChannelHandlerContext) {
    self.nextOpening = nil
    let now = NIODeadline.now()
    while self.opened < self.connection.count, self.connection.pace.map({ $0.due(self.opened) <= now }) ?? true {
      let index = self.opened
      self.opened += 1
      self.streams[index].phase = .open
      let streamID = Self.streamID(index)
      self.tracker.requested(stream: self.connection.firstStream + index, at: .now)
      context.write(
        self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: self.head)))), promise: nil
      )
      let request = self.requests[index % self.requests.count]
      context.write(
        self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(request))))),
        promise: nil)
    }
    context.flush()
    guard self.opened < self.connection.count, let pace = self.connection.pace, context.channel.isActive else { return }
    self.nextOpening = context.eventLoop.assumeIsolated().scheduleTask(deadline: pace.due(self.opened)) {
      self.openDueStreams(context: context)
    }
  }

  private func received(_ bytes: ByteBuffer, on streamID: HTTP2StreamID) {
    guard let index = self.index(of: streamID), self.streams[index].phase == .open else { return }
    let completed = self.streams[index].messages.count(bytes)
    guard completed > 0 else { return }
    let stream = self.connection.firstStream + index
    let before = self.streams[index].responses
    self.streams[index].responses += completed
    if before == 0 { self.tracker.firstResponse(stream: stream) }
    let pushes = before == 0 ? completed - 1 : completed
    if pushes > 0 && Self.subscribedToDefault(index) {
      let now = ContinuousClock.now
      for _ in 0..<pushes { self.tracker.pushed(stream: stream, at: now) }
    }
  }

  /// Reports a stream that has not ended yet as failed with `error`.
  private func end(_ streamID: HTTP2StreamID, _ error: BenchError) {
    guard let index = self.index(of: streamID), self.streams[index].phase != .ended else { return }
    self.streams[index].phase = .ended
    self.tracker.failed(
      stream: self.connection.firstStream + index, subscribedToDefault: Self.subscribedToDefault(index), error)
  }

  private func isOpen(_ streamID: HTTP2StreamID) -> Bool {
    self.index(of: streamID).map { self.streams[$0].phase == .open } ?? false
  }

  private func index(of streamID: HTTP2StreamID) -> Int? {
    let index = (Int(streamID) - 1) / 2
    return Int(streamID) % 2 == 1 && self.streams.indices.contains(index) ? index : nil
  }

  private static func streamID(_ index: Int) -> HTTP2StreamID { HTTP2StreamID(2 * index + 1) }

  /// The first, third, … stream of a connection asks for `default`, the others for `ROOTCA`.
  private static func subscribedToDefault(_ index: Int) -> Bool { index % 2 == 0 }
}
