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
/// streams hold unsent (`SDSConnectionHandler.unsentChanged`).
///
/// The request side is here, the response side in `SDSStreamHandler+Response.swift`; both share
/// the handler's fields. Its protocol state (the enum and flags below) is to move into a value
/// state machine of its own, tested without NIO (the redesign issue, #22).
final class SDSStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  enum State {
    case awaitingHead
    case admitting(SDSMethod, pending: [ByteBuffer])
    case open(any SDSCall)
    case finished
  }

  let connection: SDSConnectionHandler
  let service: SecretDiscoveryService
  let maximumUnsentDeltaResponses: Int
  var state = State.awaitingHead
  var deframer: GRPCMessageDeframer
  /// The client half-closed the stream.
  var requestsEnded = false
  var endDelivered = false
  var responseHeadersSent = false
  /// Whether a response was sent: a stream reset before that counts against the connection.
  var responded = false
  var subscription: SecretCache.Subscription?
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

  init(connection: SDSConnectionHandler, service: SecretDiscoveryService, limits: SDSServerLimits) {
    self.connection = connection
    self.service = service
    self.deframer = GRPCMessageDeframer(maximumLength: limits.maximumRequestBytes)
    self.maximumUnsentDeltaResponses = limits.maximumUnsentDeltaResponses
  }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    let streamID = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)
    self.connection.streamOpened(streamID)
  }

  func channelInactive(context: ChannelHandlerContext) {
    // Closed before the call ended: the client reset the stream (or the connection went).
    var reset = false
    if case .finished = self.state {
    } else {
      reset = true
      self.end()
    }
    // Trailers and the responses written with them are no longer this connection's to send.
    self.connection.unsentChanged(by: -self.inFlightBytes)
    self.inFlightBytes = 0
    self.connection.streamClosed(reset: reset, unserved: reset && !self.responded)
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
      if headers.endStream { self.requestsEnded = true }
      if case .awaitingHead = self.state {
        self.start(headers.headers)
      }
      if headers.endStream { self.deliverEndOfRequests() }
    case .data(let body):
      if body.endStream { self.requestsEnded = true }
      if case .byteBuffer(let bytes) = body.data {
        self.received(bytes)
      }
      if body.endStream { self.deliverEndOfRequests() }
    default:
      break
    }
  }

  // MARK: - Request

  func start(_ headers: HPACKHeaders) {
    let head: GRPCRequestHead
    do {
      head = try GRPCRequestHead.parse(headers)
    } catch {
      self.finish(error.status, httpStatus: error.httpStatus)
      return
    }
    self.state = .admitting(head.method, pending: [])
    if let timeout = head.timeout, let context = self.context {
      let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
      self.deadline = context.eventLoop.scheduleTask(in: timeout) {
        handler.value.finish(.init(code: .deadlineExceeded, message: "the call's deadline of \(timeout) passed"))
      }
    }
    let evidence = CallerEvidence(peer: self.connection.credentials, token: head.token)
    do {
      if let lease = try self.service.leaseNow(for: evidence) {
        self.admit(lease)
        return
      }
    } catch {
      self.finish(GRPCStatus(error))
      return
    }
    guard let eventLoop = self.context?.eventLoop else { return }
    let handler = NIOLoopBound(self, eventLoop: eventLoop)
    let service = self.service
    self.admission = Task {
      let result: Result<SecretLease, CallerRefusal>
      do throws(CallerRefusal) {
        result = .success(try await service.lease(for: evidence))
      } catch {
        result = .failure(error)
      }
      eventLoop.execute { handler.value.leased(result) }
    }
  }

  func leased(_ result: Result<SecretLease, CallerRefusal>) {
    guard case .admitting = self.state else {
      if case .success(let lease) = result { lease.release() }
      return
    }
    switch result {
    case .success(let lease): self.admit(lease)
    case .failure(let refusal): self.finish(GRPCStatus(refusal))
    }
  }

  func admit(_ lease: SecretLease) {
    guard case .admitting(let method, let pending) = self.state else {
      lease.release()
      return
    }
    let call: any SDSCall =
      switch method {
      case .streamSecrets: StreamingSDSCall(self.service.openStreamSecrets(lease))
      case .deltaSecrets: StreamingSDSCall(self.service.openDeltaSecrets(lease))
      case .fetchSecrets: FetchSDSCall(service: self.service, lease: lease)
      }
    self.state = .open(call)
    if case .deltaSecrets = method { self.incremental = true }
    if let cache = call.followedCache, let eventLoop = self.context?.eventLoop {
      let handler = NIOLoopBound(self, eventLoop: eventLoop)
      self.subscription = cache.subscribe {
        eventLoop.execute { handler.value.secretsChanged() }
      }
    }
    for message in pending {
      self.perform(call.receive(message))
    }
    if self.requestsEnded {
      self.deliverEndOfRequests()
    }
  }

  func received(_ bytes: ByteBuffer) {
    self.deframer.append(bytes)
    while true {
      let message: ByteBuffer?
      do {
        message = try self.deframer.next()
      } catch {
        self.finish(error.status)
        return
      }
      guard let message else { return }
      switch self.state {
      case .admitting(let method, var pending):
        guard pending.count < Self.maximumPendingMessages else {
          self.finish(
            .init(
              code: .resourceExhausted,
              message: "more than \(Self.maximumPendingMessages) requests before the caller was admitted"))
          return
        }
        pending.append(message)
        self.state = .admitting(method, pending: pending)
      case .open(let call):
        self.perform(call.receive(message))
      case .awaitingHead, .finished:
        return
      }
    }
  }

  /// Tells an admitted call that the client half-closed, once.
  func deliverEndOfRequests() {
    guard self.requestsEnded, !self.endDelivered, case .open(let call) = self.state else { return }
    self.endDelivered = true
    if self.deframer.hasPartialMessage {
      self.finish(.init(code: .internalError, message: "the request ended inside a message"))
      return
    }
    self.perform(call.requestsEnded())
  }

  func secretsChanged() {
    guard case .open(let call) = self.state else { return }
    self.perform(call.secretsChanged())
  }

  /// Messages that may arrive while the caller is admitted (Envoy sends one and waits).
  static let maximumPendingMessages = 8
}
