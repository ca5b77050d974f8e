import NIOCore
import NIOHTTP2

/// A connection's streams without a channel each: the HTTP/2 handler passes every frame to the
/// connection, which hands it to its stream by ID; a stream writes its frames on the connection.
/// What a stream channel did for its stream is done here: the stream's inbound flow-control
/// window is replenished, and the HTTP/2 handler's report that a frame left it (it holds DATA
/// while the client's window is closed) makes the stream writable again.
extension GRPCConnectionHandler: NIOHTTP2FrameDelegate {
  /// The HTTP/2 default initial window, which the socket's SETTINGS leave as it is, for each
  /// stream and for the connection.
  static let inboundWindow = 65_535

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = self.unwrapInboundIn(data)
    if let stream = self.streams[frame.streamID] {
      stream.receive(frame.payload)
    } else if case .headers = frame.payload, frame.streamID != .rootStream {
      let stream = GRPCStream(
        connection: self, eventLoop: context.eventLoop, services: self.services, callers: self.callers,
        limits: self.limits, streamID: frame.streamID)
      self.streams[frame.streamID] = stream
      self.streamOpened(frame.streamID)
      stream.receive(frame.payload)
    }
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    self.isWritable = context.channel.isWritable
    if self.isWritable {
      for stream in self.streams.values where !stream.unsent.isEmpty { stream.writeUnsent() }
    }
    context.fireChannelWritabilityChanged()
  }

  /// Called by the HTTP/2 handler as each frame leaves it.
  func wroteFrame(_ frame: HTTP2Frame) {
    guard case .data(let body) = frame.payload, let stream = self.streams[frame.streamID] else { return }
    stream.wrote(body.data.readableBytes)
  }

  func write(_ payload: HTTP2Frame.FramePayload, on streamID: HTTP2StreamID) {
    self.context?.write(self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: payload)), promise: nil)
  }

  /// Flushes what a stream wrote. The client may have reset the stream in the same read that
  /// carried the request being answered: the HTTP/2 handler then refuses the write as a
  /// connection error (`NoSuchStream`), which the connection ignores while a stream flushes.
  func flushStream() {
    if self.flushesDeferred {
      self.flushDeferred = true
      return
    }
    guard let context = self.context else { return }
    self.streamFlushes += 1
    context.flush()
    self.streamFlushes -= 1
  }

  /// Opens the client's window again once it is half used, for a stream of this connection or
  /// for the connection itself.
  func replenish(_ window: NIOHTTP2WindowUpdatedEvent) {
    guard let size = window.inboundWindowSize, size >= 0,
      window.streamID == .rootStream || self.streams[window.streamID] != nil
    else { return }
    let increment = Self.inboundWindow - size
    guard increment >= size, increment > 0 else { return }
    self.write(.windowUpdate(windowSizeIncrement: increment), on: window.streamID)
    self.context?.flush()
  }

  /// The agent is stopping: each stream ends cleanly, and Envoy keeps its secrets and
  /// reconnects to the next agent.
  func finishAllStreams() {
    for stream in Array(self.streams.values) { stream.finish(.ok) }
  }

  /// The connection closed: every stream with it.
  func closeAllStreams() {
    let streams = self.streams
    self.streams = [:]
    for stream in streams.values { stream.closed() }
  }
}
