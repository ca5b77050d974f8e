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
/// One concept in one file, over 350 lines: the call's request and response sides share every
/// field of the handler. Its protocol state (the enum and flags below) is to move into a value
/// state machine of its own, tested without NIO (the redesign issue, #22), which will shrink it.
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
  private let maximumUnsentDeltaResponses: Int
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
  /// Bytes of the last response written that have not yet left for the socket: the client's
  /// flow-control window is closed, or the connection cannot write.
  private var inFlightBytes = 0
  /// Responses that wait for the stream to become writable, oldest first.
  private var unsent: [[UInt8]] = []
  /// Whether responses carry changes only (`DeltaSecrets`), so that none may replace another.
  private var incremental = false

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
      self.send(message)
    case .sendAndFinish(let message):
      // A unary call's one response is written whether or not the stream can take it.
      self.write(message)
      self.finish(.ok)
    case .finish(let status):
      self.finish(status)
    }
  }

  /// Writes a streaming call's response if the stream can take it; otherwise holds it.
  private func send(_ message: [UInt8]) {
    guard let context = self.context else { return }
    guard context.channel.isWritable, self.unsent.isEmpty else {
      self.hold(message)
      return
    }
    self.write(message)
    self.flush()
  }

  /// Keeps a response for when the stream is writable: the newest instead of the one held for
  /// `StreamSecrets`, where each response is the whole state; after those held for
  /// `DeltaSecrets`, whose stream is reset once it holds too many.
  private func hold(_ message: [UInt8]) {
    if !self.incremental, let replaced = self.unsent.popLast() {
      self.connection.unsentChanged(by: -replaced.count)
    }
    self.unsent.append(message)
    self.connection.unsentChanged(by: message.count)
    if self.unsent.count > self.maximumUnsentDeltaResponses {
      // The client has not taken its responses for a long time; it resubscribes on a new stream.
      self.end()
      self.context?.close(promise: nil)
    }
  }

  private func writeUnsent() {
    guard !self.unsent.isEmpty, case .open = self.state else { return }
    let unsent = self.unsent
    self.unsent.removeAll()
    for message in unsent {
      self.connection.unsentChanged(by: -message.count)
      self.write(message)
    }
    self.flush()
  }

  private func write(_ message: [UInt8]) {
    guard let context = self.context else { return }
    if !self.responseHeadersSent {
      self.responseHeadersSent = true
      context.write(self.wrapOutboundOut(.headers(.init(headers: Self.responseHeaders))), promise: nil)
    }
    self.responded = true
    let framed = GRPCMessageDeframer.frame(message, allocator: context.channel.allocator)
    // Counted before the write: the stream reports it sent (writable again) within the flush.
    self.inFlightBytes += framed.readableBytes
    self.connection.unsentChanged(by: framed.readableBytes)
    context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(framed)))), promise: nil)
  }

  /// Flushes what this stream wrote. The client may have reset the stream in the same read
  /// that carried the request being answered (the stream channel hands its last frames to the
  /// handler as it closes): the HTTP/2 handler then refuses the write as a connection error
  /// (`NoSuchStream`), which the connection ignores while a stream flushes.
  private func flush() {
    guard let context = self.context else { return }
    self.connection.streamFlushes += 1
    context.flush()
    self.connection.streamFlushes -= 1
  }

  /// Ends the call with `status` in its trailers (trailers-only if nothing was sent, with
  /// `httpStatus`), then stops a client still sending with `RST_STREAM(NO_ERROR)`.
  private func finish(_ status: GRPCStatus, httpStatus: Int = 200) {
    if case .finished = self.state { return }
    // Responses held for the stream go before its trailers (HTTP/2 queues them in order).
    let unsent = self.unsent
    self.end()
    for message in unsent { self.write(message) }
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
    self.flush()
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
    // What was written stays counted until it leaves or the stream closes (`channelInactive`).
    self.connection.unsentChanged(by: -self.unsent.reduce(0) { $0 + $1.count })
    self.unsent = []
  }

  private static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
}
