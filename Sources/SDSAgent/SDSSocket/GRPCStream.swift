import NIOCore
import NIOHPACK
import NIOHTTP2
import SDSAgentCore

/// Serves one HTTP/2 stream of the SDS socket as a gRPC call, on the connection's event loop
/// with no task and no channel of its own: its connection (`GRPCConnectionHandler`) hands it the
/// stream's frames and writes what it answers on the connection, tagged with its stream ID. It
/// checks the request head, admits the caller, then feeds each request message and each change
/// of the caller's secrets to the call and writes what it answers.
///
/// A stream takes one response at a time: it is writable again once its last response has
/// left the HTTP/2 handler (which holds it while the client's flow-control window is closed)
/// and while the connection is writable (the watermarks `SDSSocketServer` sets). Until then a `StreamSecrets`
/// stream holds only its newest response (each is the whole state), a `DeltaSecrets` stream up
/// to `maximumUnsentDeltaResponses` (each carries only changes); the connection counts what its
/// streams hold unsent (`GRPCConnectionHandler.unsentChanged`).
///
/// The request side is here, the response side in `GRPCStream+Response.swift`; both share the
/// stream's fields. The call's protocol state is `GRPCCallStateMachine`; the stream holds what it
/// does (the call, its subscription, deadline and admission) and the responses it holds.
final class GRPCStream {
  let connection: GRPCConnectionHandler
  let eventLoop: any EventLoop
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
  /// Whether the HTTP/2 stream is open: frames may be written to it.
  var isOpen = true
  /// Bytes of the last response written that have not yet left the HTTP/2 handler: the client's
  /// flow-control window is closed.
  var inFlightBytes = 0
  /// Responses that wait for the stream to become writable, oldest first.
  var unsent: [ByteBuffer] = []
  /// Whether responses carry changes only (`DeltaSecrets`), so that none may replace another.
  var incremental = false

  let streamID: HTTP2StreamID

  init(
    connection: GRPCConnectionHandler, eventLoop: any EventLoop, services: GRPCServiceTable,
    callers: any SecretLeaseProvider, limits: SDSServerLimits, streamID: HTTP2StreamID
  ) {
    self.connection = connection
    self.eventLoop = eventLoop
    self.streamID = streamID
    self.callers = callers
    self.machine = GRPCCallStateMachine(maximumRequestBytes: limits.maximumRequestBytes, services: services)
    self.maximumUnsentDeltaResponses = limits.maximumUnsentDeltaResponses
  }

  /// The HTTP/2 stream closed (the connection removed it): if the call had not ended, the client
  /// reset the stream or the connection went.
  func closed() {
    let reset = !self.machine.isClosed
    if reset { self.end() }
    self.isOpen = false
    // Trailers and the responses written with them are no longer this connection's to send.
    self.connection.unsentChanged(by: -self.inFlightBytes)
    self.inFlightBytes = 0
    self.connection.streamClosed(reset: reset, unserved: reset && !self.machine.responded)
  }

  /// The HTTP/2 handler passed on `bytes` of this stream's responses.
  func wrote(_ bytes: Int) {
    guard self.inFlightBytes > 0 else { return }
    let left = min(bytes, self.inFlightBytes)
    self.inFlightBytes -= left
    self.connection.unsentChanged(by: -left)
    if self.inFlightBytes == 0 { self.writeUnsent() }
  }

  /// Whether a response written now would leave at once: nothing of the last one is held, and
  /// the connection can write.
  var isWritable: Bool { self.inFlightBytes == 0 && self.connection.isWritable }

  func receive(_ payload: HTTP2Frame.FramePayload) {
    switch payload {
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
    if let timeout {
      let handler = NIOLoopBound(self, eventLoop: self.eventLoop)
      self.deadline = self.eventLoop.scheduleTask(in: timeout) {
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
    let eventLoop = self.eventLoop
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
    if let cache = call.followedCache {
      self.connection.follow(cache, by: self, on: self.eventLoop)
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

  func secretsChanged(_ changes: SecretChanges) {
    guard let call = self.call, call.isAffected(by: changes) else { return }
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
