import NIOCore
import NIOHPACK
import NIOHTTP2
import SDSAgentCore

/// Serves one HTTP/2 stream of the SDS socket as a gRPC call, on the connection's event loop
/// with no task of its own: checks the request head, admits the caller, then feeds each request
/// message and each change of the caller's secrets to the call and writes what it answers.
final class SDSStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  private enum State {
    case awaitingHead
    case admitting(SDSMethod, pending: [ByteBuffer])
    case open(any SDSCall)
    case finished
  }

  private let connection: SDSConnectionHandler
  private let service: SecretDiscoveryService
  private var state = State.awaitingHead
  private var deframer: GRPCMessageDeframer
  /// The client half-closed the stream.
  private var requestsEnded = false
  private var endDelivered = false
  private var responseHeadersSent = false
  /// Whether a response was sent: a stream reset before that counts against the connection.
  private var responded = false
  private var subscription: SecretCache.Subscription?
  private var deadline: Scheduled<Void>?
  /// Admits a caller that must wait (a token to verify, a first certificate); cancelled if the
  /// stream ends first.
  private var admission: Task<Void, Never>?
  private var context: ChannelHandlerContext?

  init(connection: SDSConnectionHandler, service: SecretDiscoveryService, limits: SDSServerLimits) {
    self.connection = connection
    self.service = service
    self.deframer = GRPCMessageDeframer(maximumLength: limits.maximumRequestBytes)
  }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    let streamID = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)
    self.connection.streamOpened(streamID)
  }

  func channelInactive(context: ChannelHandlerContext) {
    // Closed before the call ended: the client reset the stream (or the connection went).
    var resetUnserved = false
    if case .finished = self.state {
    } else {
      resetUnserved = !self.responded
      self.end()
    }
    self.connection.streamClosed(unserved: resetUnserved)
    self.context = nil
    context.fireChannelInactive()
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

  private func start(_ headers: HPACKHeaders) {
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

  private func leased(_ result: Result<SecretLease, CallerRefusal>) {
    guard case .admitting = self.state else {
      if case .success(let lease) = result { lease.release() }
      return
    }
    switch result {
    case .success(let lease): self.admit(lease)
    case .failure(let refusal): self.finish(GRPCStatus(refusal))
    }
  }

  private func admit(_ lease: SecretLease) {
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

  private func received(_ bytes: ByteBuffer) {
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
  private func deliverEndOfRequests() {
    guard self.requestsEnded, !self.endDelivered, case .open(let call) = self.state else { return }
    self.endDelivered = true
    if self.deframer.hasPartialMessage {
      self.finish(.init(code: .internalError, message: "the request ended inside a message"))
      return
    }
    self.perform(call.requestsEnded())
  }

  private func secretsChanged() {
    guard case .open(let call) = self.state else { return }
    self.perform(call.secretsChanged())
  }

  /// Messages that may arrive while the caller is admitted (Envoy sends one and waits).
  static let maximumPendingMessages = 8

  // MARK: - Response

  private func perform(_ action: SDSCallAction) {
    switch action {
    case .wait:
      return
    case .send(let message):
      self.write(message)
      self.context?.flush()
    case .sendAndFinish(let message):
      self.write(message)
      self.finish(.ok)
    case .finish(let status):
      self.finish(status)
    }
  }

  private func write(_ message: [UInt8]) {
    guard let context = self.context else { return }
    if !self.responseHeadersSent {
      self.responseHeadersSent = true
      context.write(self.wrapOutboundOut(.headers(.init(headers: Self.responseHeaders))), promise: nil)
    }
    self.responded = true
    let framed = GRPCMessageDeframer.frame(message, allocator: context.channel.allocator)
    context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(framed)))), promise: nil)
  }

  /// Ends the call with `status` in its trailers (trailers-only if nothing was sent, with
  /// `httpStatus`), then stops a client still sending with `RST_STREAM(NO_ERROR)`.
  private func finish(_ status: GRPCStatus, httpStatus: Int = 200) {
    if case .finished = self.state { return }
    self.end()
    guard let context = self.context else { return }
    var trailers = HPACKHeaders()
    if !self.responseHeadersSent {
      trailers = [":status": String(httpStatus), "content-type": "application/grpc"]
    }
    status.add(to: &trailers)
    context.write(self.wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    if !self.requestsEnded {
      context.write(self.wrapOutboundOut(.rstStream(.noError)), promise: nil)
    }
    context.flush()
  }

  /// Releases everything the call holds.
  private func end() {
    self.deadline?.cancel()
    self.deadline = nil
    self.admission?.cancel()
    self.admission = nil
    self.subscription?.cancel()
    self.subscription = nil
    if case .open(let call) = self.state {
      call.close()
    }
    self.state = .finished
  }

  private static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
}
