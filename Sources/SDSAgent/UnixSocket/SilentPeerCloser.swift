import NIOCore

/// Closes a connection from which nothing was read for a while. The transport pings every
/// connection `keepalive.time` after its last read, so a live peer is never silent for longer
/// than `keepalive.time + keepalive.timeout`; one that is has stopped answering, or never spoke
/// HTTP/2.
///
/// grpc-swift-nio-transport (2.9.2) does not close such a peer itself: its keepalive timeout and
/// its idle timer both start a graceful close (GOAWAY and a PING) that finishes only when the peer
/// acknowledges the PING (`ServerConnectionManagementHandler.initiateGracefulShutdown` and
/// `handlePingAck`; `maxGraceTime` starts only then).
final class SilentPeerCloser: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = NIOAny

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
      context.close(promise: nil)
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  /// For `ChannelDebuggingCallbacks.onAcceptTCPConnection`: watches the accepted connection's
  /// raw reads, ahead of the HTTP/2 handler.
  static func installer(after silence: Duration) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
    let timeout = TimeAmount(silence)
    return { channel in
      channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHandlers(
          [IdleStateHandler(readTimeout: timeout), SilentPeerCloser()], position: .first)
      }
    }
  }
}
