import NIOCore
import NIOHPACK
import NIOHTTP2
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// First handler of every HTTP/2 stream on the SDS socket: replaces whatever a client sent under
/// `PeerCredentials.carrierKey` with the kernel's `SO_PEERCRED` of the connection, so the
/// request metadata carries credentials no client can forge.
final class PeerCredentialsHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias InboundOut = HTTP2Frame.FramePayload

  private let carrierValue: String?

  init(credentials: PeerCredentials?) {
    self.carrierValue = credentials?.carrierValue
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard case .headers(var headers) = self.unwrapInboundIn(data) else {
      context.fireChannelRead(data)
      return
    }
    headers.headers.remove(name: PeerCredentials.carrierKey)
    if let carrierValue = self.carrierValue {
      headers.headers.add(name: PeerCredentials.carrierKey, value: carrierValue)
    }
    context.fireChannelRead(self.wrapInboundOut(.headers(headers)))
  }

  /// For `ChannelDebuggingCallbacks.onAcceptHTTP2Stream`: reads the connection's credentials
  /// (the stream's parent is the accepted Unix socket) and installs the handler.
  @Sendable
  static func install(on stream: any Channel) -> EventLoopFuture<Void> {
    let credentials: EventLoopFuture<PeerCredentials?>
    if let socket = stream.parent as? any SocketOptionProvider {
      credentials = socket.unsafeGetSocketOption(
        level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
      ).map { (raw: KernelPeerCredentials) -> PeerCredentials? in
        PeerCredentials(pid: raw.pid, uid: raw.uid, gid: raw.gid)
      }.recover { _ in nil }
    } else {
      credentials = stream.eventLoop.makeSucceededFuture(nil)
    }
    return credentials.flatMapThrowing { credentials in
      try stream.pipeline.syncOperations.addHandler(PeerCredentialsHandler(credentials: credentials), position: .first)
    }
  }
}

/// `struct ucred` (Glibc hides it): what `SO_PEERCRED` returns.
struct KernelPeerCredentials: Sendable {
  var pid: Int32 = 0
  var uid: UInt32 = 0
  var gid: UInt32 = 0
}
