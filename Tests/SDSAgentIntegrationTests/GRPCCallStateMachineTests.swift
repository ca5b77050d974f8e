import NIOCore
import NIOHPACK
import Testing

@testable import SDSAgent

/// One gRPC call's protocol state over an HTTP/2 stream, without a channel: the frames a client
/// sends go in, the events and frames the stream's handler acts on come out.
@Suite struct GRPCCallStateMachineTests {
  static let streamSecretsHead: HPACKHeaders = [
    ":method": "POST", ":path": "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
    "content-type": "application/grpc", "grpc-timeout": "5S",
  ]

  static let services = EchoSocketService.servicesWithSDS

  static func framed(_ bytes: [UInt8]) -> ByteBuffer {
    GRPCMessageDeframer.frame(bytes, allocator: .init())
  }

  static func drain(_ machine: inout GRPCCallStateMachine) -> [GRPCCallStateMachine.Inbound] {
    var events: [GRPCCallStateMachine.Inbound] = []
    while let event = machine.nextInbound() { events.append(event) }
    return events
  }

  @Test func aValidHeadIsAdmittedWithItsDeadline() throws {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    let action = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    let route = try #require(Self.services.route("/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"))
    #expect(route.method == "StreamSecrets")
    #expect(action == .admit(route, timeout: .seconds(5), token: nil))
    #expect(machine.phase == .admitting)
    #expect(machine.receiveHeaders(Self.streamSecretsHead, endStream: false) == .none)
  }

  @Test func anHTTPRequestThatIsNotGRPCIsRefusedWithItsHTTPStatus() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    var head = Self.streamSecretsHead
    head.replaceOrAdd(name: ":method", value: "GET")
    guard case .refuse(let status, let httpStatus) = machine.receiveHeaders(head, endStream: true) else {
      Issue.record("a GET was admitted")
      return
    }
    #expect(httpStatus == 405)
    #expect(status.code == .internalError)
    let ending = machine.ending(status, httpStatus: httpStatus)
    #expect(ending.trailers.first(name: ":status") == "405")
    #expect(ending.trailers.first(name: "grpc-status") == "13")
    #expect(!ending.resetsStream)
  }

  @Test func anUnknownMethodIsUnimplemented() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    var head = Self.streamSecretsHead
    head.replaceOrAdd(name: ":path", value: "/other.Service/Call")
    guard case .refuse(let status, httpStatus: 200) = machine.receiveHeaders(head, endStream: false) else {
      Issue.record("an unknown method was admitted")
      return
    }
    #expect(status.code == .unimplemented)
    #expect(machine.ending(status).resetsStream)
  }

  @Test func messagesAreHeldUntilTheCallerIsAdmittedThenDeliveredInOrder() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    var bytes = Self.framed([1])
    bytes.writeImmutableBuffer(Self.framed([2, 2]))
    machine.receiveData(bytes, endStream: true)
    #expect(Self.drain(&machine).isEmpty)
    machine.admitted()
    #expect(
      Self.drain(&machine) == [.message(ByteBuffer(bytes: [1])), .message(ByteBuffer(bytes: [2, 2])), .requestsEnded])
    #expect(machine.nextInbound() == nil)
  }

  @Test func tooManyMessagesBeforeAdmissionExhaustTheCall() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    var bytes = ByteBuffer()
    for _ in 0...GRPCCallStateMachine.maximumPendingMessages { bytes.writeImmutableBuffer(Self.framed([0])) }
    machine.receiveData(bytes, endStream: false)
    guard case .failed(let status) = machine.nextInbound() else {
      Issue.record("the ninth message was held")
      return
    }
    #expect(status.code == .resourceExhausted)
  }

  @Test func aMessageSplitAcrossFramesIsDeliveredWhole() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    machine.admitted()
    let bytes = Self.framed([7, 8, 9])
    machine.receiveData(bytes.getSlice(at: 0, length: 6)!, endStream: false)
    #expect(Self.drain(&machine).isEmpty)
    machine.receiveData(bytes.getSlice(at: 6, length: 2)!, endStream: false)
    #expect(Self.drain(&machine) == [.message(ByteBuffer(bytes: [7, 8, 9]))])
  }

  @Test func aRequestEndingInsideAMessageFails() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    machine.admitted()
    machine.receiveData(ByteBuffer(bytes: [0, 0, 0, 0, 4, 1]), endStream: true)
    #expect(
      Self.drain(&machine) == [.failed(GRPCStatus(code: .internalError, message: "the request ended inside a message"))]
    )
  }

  @Test func aMessageOverTheLimitFailsOnItsPrefix() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 4, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    machine.admitted()
    machine.receiveData(ByteBuffer(bytes: [0, 0, 0, 0, 5]), endStream: false)
    guard case .failed(let status) = machine.nextInbound() else {
      Issue.record("an oversized message was not refused")
      return
    }
    #expect(status.code == .resourceExhausted)
  }

  @Test func theResponseHeadPrecedesOnlyTheFirstResponse() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    machine.admitted()
    #expect(!machine.responded)
    #expect(machine.responseHead() == GRPCCallStateMachine.responseHeaders)
    #expect(machine.responded)
    #expect(machine.responseHead() == nil)
    let ending = machine.ending(.ok)
    #expect(ending.trailers.first(name: ":status") == nil)
    #expect(ending.trailers.first(name: "grpc-status") == "0")
    #expect(ending.resetsStream)
  }

  @Test func aClosedCallReadsNothingMore() {
    var machine = GRPCCallStateMachine(maximumRequestBytes: 1024, services: Self.services)
    _ = machine.receiveHeaders(Self.streamSecretsHead, endStream: false)
    machine.admitted()
    machine.close()
    machine.receiveData(Self.framed([1]), endStream: true)
    #expect(machine.isClosed)
    #expect(machine.nextInbound() == nil)
    #expect(!machine.ending(.ok).resetsStream)
  }
}
