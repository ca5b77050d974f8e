import NIOCore

/// Between the socket and the HTTP/2 handler: the flushes of one event-loop tick become one
/// write to the socket. A rotation pushes to every stream of a connection in the same tick;
/// without this, each stream's push would be a system call of its own.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private var flushPending = false

  func flush(context: ChannelHandlerContext) {
    guard !self.flushPending else { return }
    self.flushPending = true
    let pending = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    context.eventLoop.execute {
      let (coalescer, context) = pending.value
      guard coalescer.flushPending else { return }
      coalescer.flushPending = false
      context.flush()
    }
  }

  /// What was written goes out before the connection closes.
  func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
    if self.flushPending {
      self.flushPending = false
      context.flush()
    }
    context.close(mode: mode, promise: promise)
  }
}
