import NIOCore
import NIOHPACK

/// One gRPC call over one HTTP/2 stream, as a value: the request head checked, request messages
/// deframed and held until the caller is admitted, the client's half-close, the response head,
/// each response's frame and the trailers. Transitions return what the stream's handler does
/// next; the handler owns the I/O and the call's resources, this owns the protocol's state.
///
/// The handler feeds it the client's frames (`receiveHeaders`, `receiveData`), then takes the
/// request side's events one at a time with `nextInbound()` until it answers nil.
struct GRPCCallStateMachine {
  enum Phase: Equatable {
    /// No request HEADERS yet.
    case awaitingHead
    /// The head was valid; the caller is being admitted and its messages are held.
    case admitting
    /// The call is open: request messages go to it.
    case open
    /// Trailers were sent, or the stream was reset.
    case closed
  }

  /// What the handler does with a request HEADERS frame.
  enum HeadAction: Equatable {
    /// A trailer or a repeated head: nothing.
    case none
    /// A valid head: admit the caller, and arm the deadline if the head has one.
    case admit(GRPCServiceTable.Route, timeout: TimeAmount?, token: String?)
    /// Not a call this socket serves: end it with this status (trailers-only, with `httpStatus`).
    case refuse(GRPCStatus, httpStatus: Int)
  }

  /// The request side's next event for the open call.
  enum Inbound: Equatable {
    case message(ByteBuffer)
    /// The client half-closed after its last whole message.
    case requestsEnded
    /// The client broke gRPC's framing or a limit: the call ends with this status.
    case failed(GRPCStatus)
  }

  /// The trailers that end the call, and whether the client, still sending, is then stopped
  /// with `RST_STREAM(NO_ERROR)`.
  struct Ending: Equatable {
    var trailers: HPACKHeaders
    var resetsStream: Bool
  }

  private(set) var phase = Phase.awaitingHead
  /// The client half-closed the stream.
  private(set) var requestsEnded = false
  /// Whether a response was sent: a stream reset before that counts against the connection.
  private(set) var responded = false
  private var endDelivered = false
  private var responseHeadersSent = false
  private var deframer: GRPCMessageDeframer
  private let services: GRPCServiceTable
  /// Messages deframed while the caller is being admitted, oldest first.
  private var pending: [ByteBuffer] = []
  private var pendingDelivered = 0

  init(maximumRequestBytes: Int, services: GRPCServiceTable) {
    self.deframer = GRPCMessageDeframer(maximumLength: maximumRequestBytes)
    self.services = services
  }

  /// Messages that may arrive while the caller is admitted (Envoy sends one and waits).
  static let maximumPendingMessages = 8

  var isClosed: Bool { self.phase == .closed }

  mutating func receiveHeaders(_ headers: HPACKHeaders, endStream: Bool) -> HeadAction {
    if endStream { self.requestsEnded = true }
    guard case .awaitingHead = self.phase else { return .none }
    do {
      let head = try GRPCRequestHead.parse(headers, services: self.services)
      self.phase = .admitting
      return .admit(head.route, timeout: head.timeout, token: head.token)
    } catch {
      return .refuse(error.status, httpStatus: error.httpStatus)
    }
  }

  mutating func receiveData(_ bytes: ByteBuffer, endStream: Bool) {
    if endStream { self.requestsEnded = true }
    guard !self.isClosed else { return }
    self.deframer.append(bytes)
  }

  /// The caller was admitted: held messages, then the rest, go to the call.
  mutating func admitted() {
    guard case .admitting = self.phase else { return }
    self.phase = .open
  }

  /// The next event of the request side; nil until the client sends more. While the caller is
  /// being admitted, whole messages are held (at most `maximumPendingMessages`) and nil is
  /// answered.
  mutating func nextInbound() -> Inbound? {
    switch self.phase {
    case .awaitingHead, .closed:
      return nil
    case .admitting:
      while true {
        switch self.deframe() {
        case .message(let message):
          guard self.pending.count < Self.maximumPendingMessages else {
            return .failed(
              GRPCStatus(
                code: .resourceExhausted,
                message: "more than \(Self.maximumPendingMessages) requests before the caller was admitted"))
          }
          self.pending.append(message)
        case .failed(let status):
          return .failed(status)
        case .requestsEnded, nil:
          return nil
        }
      }
    case .open:
      if self.pendingDelivered < self.pending.count {
        let message = self.pending[self.pendingDelivered]
        self.pendingDelivered += 1
        if self.pendingDelivered == self.pending.count {
          self.pending = []
          self.pendingDelivered = 0
        }
        return .message(message)
      }
      if let next = self.deframe() { return next }
      guard self.requestsEnded, !self.endDelivered else { return nil }
      self.endDelivered = true
      if self.deframer.hasPartialMessage {
        return .failed(GRPCStatus(code: .internalError, message: "the request ended inside a message"))
      }
      return .requestsEnded
    }
  }

  private mutating func deframe() -> Inbound? {
    do {
      return try self.deframer.next().map(Inbound.message)
    } catch {
      return .failed(error.status)
    }
  }

  /// The response head, before the first response message only; marks the call responded.
  mutating func responseHead() -> HPACKHeaders? {
    self.responded = true
    guard !self.responseHeadersSent else { return nil }
    self.responseHeadersSent = true
    return Self.responseHeaders
  }

  /// Closes the call: nothing more is read or delivered. Responses already framed may still
  /// precede the trailers (`ending`).
  mutating func close() {
    self.phase = .closed
    self.pending = []
    self.pendingDelivered = 0
  }

  /// The trailers with `status` (trailers-only, with `httpStatus`, if nothing was sent).
  func ending(_ status: GRPCStatus, httpStatus: Int = 200) -> Ending {
    var trailers = HPACKHeaders()
    if !self.responseHeadersSent {
      trailers = [":status": String(httpStatus), "content-type": "application/grpc"]
    }
    status.add(to: &trailers)
    return Ending(trailers: trailers, resetsStream: !self.requestsEnded)
  }

  static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
}
