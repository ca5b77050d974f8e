import NIOCore
import NIOHPACK
import NIOHTTP2
import SDSAgentCore

/// Serves one HTTP/2 stream of the SDS socket as a gRPC call, on the connection's event loop
/// with no task of its own: checks the request head, admits the caller, then feeds each request
/// message and each change of the caller's secrets to the call and writes what it answers.
///
/// A stream takes one response at a time: it is writable again once its last response has
/// left for the socket (the watermarks `SDSSocketServer` sets). Until then a `StreamSecrets`
/// stream holds only its newest response (each is the whole state), a `DeltaSecrets` stream up
/// to `maximumUnsentDeltaResponses` (each carries only changes); the connection counts what its
/// streams hold unsent (`GRPCConnectionHandler.unsentChanged`).
///
/// The request side is here, the response side in `GRPCStreamHandler+Response.swift`; both share
/// the handler's fields. The call's protocol state is `GRPCCallStateMachine`; the handler holds
/// what it does (the call, its subscription, deadline and admission) and the responses it holds.
final class GRPCStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  let connection: GRPCConnectionHandler
  /// Admits each caller before its call opens, whichever service it asked for.
  let callers: any SecretLeaseProvider
  let maximumUnsentDeltaResponses: Int
  var machine: GRPCCallStateMachine
  /// The admitted call, while it is open.
  var call: (any GRPCSocketCall)?
  /// The cache whose changes the connection hands this stream, while the call is open.
  var followed: ObjectIdentifier?
  var deadline: Scheduled<Void>?
  /// Admits a caller that must wait (a token to verify, a first certificate), or makes an
  /// answer off the event loop; cancelled if the stream ends first.
  var admission: Task<Void, Never>?
  var context: ChannelHandlerContext?
  /// Bytes of the last response written that have not yet left for the socket: the client's
  /// flow-control window is closed, or the connection cannot write.
  var inFlightBytes = 0
  /// Responses that wait for the stream to become writable, oldest first.
  var unsent: [[UInt8]] = []
  /// Whether responses carry changes only (`DeltaSecrets`), so that none may replace another.
  var incremental = false

  /// The stream's ID, for the connection's GOAWAY; nil where the channel has none.
  let streamID: HTTP2StreamID?

  init(
    connection: GRPCConnectionHandler, services: GRPCServiceTable, callers: any SecretLeaseProvider,
    limits: SDSServerLimits, streamID: HTTP2StreamID?
  ) {
    self.connection = connection
    self.streamID = streamID
    self.callers = callers
    self.machine = GRPCCallStateMachine(maximumRequestBytes: limits.maximumRequestBytes, services: services)
    self.maximumUnsentDeltaResponses = limits.maximumUnsentDeltaResponses
  }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    self.connection.streamOpened(self.streamID)
  }

  func channelInactive(context: ChannelHandlerContext) {
    // Closed before the call ended: the client reset the stream (or the connection went).
    let reset = !self.machine.isClosed
    if reset { self.end() }
    // Trailers and the responses written with them are no longer this connection's to send.
    self.connection.unsentChanged(by: -self.inFlightBytes)
    self.inFlightBytes = 0
    self.connection.streamClosed(reset: reset, unserved: reset && !self.machine.responded)
    self.context = nil
    context.fireChannelInactive()
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    // A change of the connection's writability reaches every stream: most have nothing to do.
    if self.inFlightBytes + self.unsent.count > 0, context.channel.isWritable {
      // What was written has left for the socket.
      self.connection.unsentChanged(by: -self.inFlightBytes)
      self.inFlightBytes = 0
      self.writeUnsent()
    }
    context.fireChannelWritabilityChanged()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    // A reset by the client arrives as an error before the stream closes; nothing to answer.
    context.close(promise: nil)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ChannelShouldQuiesceEvent {
      // The agent is stopping: the stream ends cleanly, and Envoy keeps its secrets and
      // reconnects to the next agent.
      self.finish(.ok)
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch self.unwrapInboundIn(data) {
    case .headers(let headers):
      switch self.machine.receiveHeaders(headers.headers, endStream: headers.endStream) {
      case .none: break
      case .admit(let route, let timeout, let token): self.start(route, timeout: timeout, token: token)
      case .refuse(let status, let httpStatus): self.finish(status, httpStatus: httpStatus)
      }
    case .data(let body):
      let bytes: ByteBuffer
      if case .byteBuffer(let buffer) = body.data { bytes = buffer } else { bytes = ByteBuffer() }
      self.machine.receiveData(bytes, endStream: body.endStream)
    default:
      return
    }
    self.readInbound()
  }

  // MARK: - Request

  func start(_ route: GRPCServiceTable.Route, timeout: TimeAmount?, token: String?) {
    if let timeout, let context = self.context {
      let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
      self.deadline = context.eventLoop.scheduleTask(in: timeout) {
        handler.value.finish(.init(code: .deadlineExceeded, message: "the call's deadline of \(timeout) passed"))
      }
    }
    let evidence = CallerEvidence(peer: self.connection.credentials, token: token)
    do {
      if let lease = try self.callers.leaseNow(for: evidence) {
        self.admit(lease, route: route)
        return
      }
    } catch {
      self.finish(GRPCStatus(error))
      return
    }
    guard let eventLoop = self.context?.eventLoop else { return }
    let handler = NIOLoopBound(self, eventLoop: eventLoop)
    let callers = self.callers
    self.admission = Task {
      let result: Result<SecretLease, CallerRefusal>
      do throws(CallerRefusal) {
        result = .success(try await callers.lease(for: evidence))
      } catch {
        result = .failure(error)
      }
      eventLoop.execute { handler.value.leased(result, route: route) }
    }
  }

  func leased(_ result: Result<SecretLease, CallerRefusal>, route: GRPCServiceTable.Route) {
    guard case .admitting = self.machine.phase else {
      if case .success(let lease) = result { lease.release() }
      return
    }
    switch result {
    case .success(let lease):
      self.admit(lease, route: route)
      self.readInbound()
    case .failure(let refusal): self.finish(GRPCStatus(refusal))
    }
  }

  func admit(_ lease: SecretLease, route: GRPCServiceTable.Route) {
    guard case .admitting = self.machine.phase else {
      lease.release()
      return
    }
    guard let call = route.service.open(route.method, lease: lease) else {
      lease.release()
      self.finish(GRPCStatus(code: .unimplemented, message: "unknown method \(route.method)"))
      return
    }
    self.machine.admitted()
    self.call = call
    self.incremental = call.incremental
    if let cache = call.followedCache, let eventLoop = self.context?.eventLoop {
      self.connection.follow(cache, by: self, on: eventLoop)
      self.followed = ObjectIdentifier(cache)
    }
  }

  /// Hands the request side's events to the call, or ends it, until there are none.
  func readInbound() {
    while let event = self.machine.nextInbound() {
      switch event {
      case .message(let message): self.deliver(.request(message))
      case .requestsEnded: self.deliver(.requestsEnded)
      case .failed(let status): self.finish(status)
      }
    }
  }

  func secretsChanged() {
    self.deliver(.secretsChanged)
  }

  /// Hands the open call one event and performs its answer, or ends it with what it throws.
  func deliver(_ event: GRPCSocketCall.Event) {
    guard let call = self.call else { return }
    do {
      self.perform(try call.handle(event))
    } catch {
      self.finish(GRPCStatus(error))
    }
  }
}
