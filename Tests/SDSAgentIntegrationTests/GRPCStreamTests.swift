import EnvoySDSProtos
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SDSAgentCore
import SDSAgentTestSupport
import SwiftProtobuf
import Testing

@testable import SDSAgent

/// The SDS socket's connection handler and its streams in-process: HTTP/2 frames in, frames out,
/// on a `NIOAsyncTestingChannel` instead of the HTTP/2 handler and a socket; the same handlers
/// the socket runs.
@Suite(.timeLimit(.minutes(2))) struct GRPCStreamTests {
  typealias Payload = HTTP2Frame.FramePayload

  /// One stream of a connection, served by `connection`'s handler.
  struct Stream {
    let connection: Connection
    let id: HTTP2StreamID

    init(connection: Connection, id: Int = 1) {
      self.connection = connection
      self.id = HTTP2StreamID(id)
    }

    /// A stream on a connection of its own, serving `running`'s agent.
    init(_ running: RunningAgent, others: [any GRPCSocketService] = []) async throws {
      self.init(connection: try await Connection(running, others: others))
    }

    var channel: NIOAsyncTestingChannel { self.connection.channel }

    func open(_ method: SDSSocketService.Method, endStream: Bool = false) async throws {
      try await self.open(path: "/\(SDSSocketService.name)/\(method.rawValue)", endStream: endStream)
    }

    func open(path: String, extra: HPACKHeaders = [:], endStream: Bool = false) async throws {
      var head: HPACKHeaders = [
        ":method": "POST", ":scheme": "http", ":path": path, "content-type": "application/grpc", "te": "trailers",
      ]
      head.add(contentsOf: extra)
      try await self.receive(.headers(.init(headers: head, endStream: endStream)))
    }

    /// A frame from the client on this stream.
    func receive(_ payload: Payload) async throws {
      try await self.channel.writeInbound(HTTP2Frame(streamID: self.id, payload: payload))
    }

    func send(_ message: some SwiftProtobuf.Message, endStream: Bool = false) async throws {
      let framed = GRPCMessageDeframer.frame(try message.serializedBytes(), allocator: .init())
      try await self.receive(.data(.init(data: .byteBuffer(framed), endStream: endStream)))
    }

    /// The HTTP/2 handler closes the stream (the client reset it, or both sides ended it).
    func close() async throws {
      let (channel, id) = (self.channel, self.id)
      try await channel.testingEventLoop.executeInContext {
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: id, reason: .cancel))
      }
    }

    func next() async throws -> Payload {
      try await self.connection.next(on: self.id)
    }

    /// The response head, which must be the next frame.
    func expectResponseHead() async throws {
      guard case .headers(let head) = try await self.next() else {
        Issue.record("the response did not start with HEADERS")
        return
      }
      #expect(head.headers.first(name: ":status") == "200")
      #expect(head.headers.first(name: "content-type") == "application/grpc")
      #expect(!head.endStream)
    }

    /// The next response message, decoded.
    func response<Response: SwiftProtobuf.Message>(_ type: Response.Type) async throws -> Response {
      guard case .data(let body) = try await self.next(), case .byteBuffer(var bytes) = body.data else {
        throw Unexpected()
      }
      let flag = bytes.readInteger(as: UInt8.self)
      let length = bytes.readInteger(as: UInt32.self)
      #expect(flag == 0)
      #expect(length.map(Int.init) == bytes.readableBytes)
      return try Response(serializedBytes: Array(bytes.readableBytesView))
    }

    /// Opens a `StreamSecrets` call for `names` and returns its first response.
    func subscribe(_ names: [String]) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
      try await self.open(.streamSecrets)
      try await self.send(GRPCStreamTests.request(names))
      try await self.expectResponseHead()
      return try await self.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
    }

    /// The trailers, which must be the next frame and end the stream.
    func trailers() async throws -> HPACKHeaders {
      guard case .headers(let trailers) = try await self.next(), trailers.endStream else { throw Unexpected() }
      return trailers.headers
    }
  }

  /// One connection as on the socket: its handler on a testing channel, which stands in for the
  /// HTTP/2 handler (`FrameRelay` reports each frame written as the HTTP/2 handler would).
  final class Connection: @unchecked Sendable {
    let channel: NIOAsyncTestingChannel
    let relay: FrameRelay
    /// Frames written for a stream other than the one being read, by stream; read on the test's task.
    private var held: [HTTP2StreamID: [Payload]] = [:]

    init(_ running: RunningAgent, others: [any GRPCSocketService] = []) async throws {
      let service = running.agent.sdsService
      let services = GRPCServiceTable([SDSSocketService(service: service)] + others)
      let channel = NIOAsyncTestingChannel()
      self.relay = try await channel.testingEventLoop.executeInContext {
        let handler = GRPCConnectionHandler(
          credentials: nil, services: services, callers: service.callers, limits: SDSServerLimits(),
          logger: .init(label: "test"))
        let relay = FrameRelay(delegate: handler)
        try channel.pipeline.syncOperations.addHandlers(relay, handler)
        return relay
      }
      self.channel = channel
    }

    /// The next frame written on `streamID`.
    func next(on streamID: HTTP2StreamID) async throws -> Payload {
      if let payload = self.held[streamID]?.first {
        self.held[streamID]?.removeFirst()
        return payload
      }
      while true {
        let frame = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        if frame.streamID == streamID { return frame.payload }
        self.held[frame.streamID, default: []].append(frame.payload)
      }
    }
  }

  /// Tells the connection each frame it wrote left, as the HTTP/2 handler does for frames the
  /// client's flow-control window lets out; while `holding`, it keeps those reports back, as the
  /// HTTP/2 handler does while the window is closed. Used on the channel's event loop only.
  final class FrameRelay: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame
    let delegate: any NIOHTTP2FrameDelegate
    var holding = false
    private var held: [HTTP2Frame] = []

    init(delegate: any NIOHTTP2FrameDelegate) {
      self.delegate = delegate
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
      let frame = self.unwrapOutboundIn(data)
      context.write(data, promise: promise)
      if self.holding {
        self.held.append(frame)
      } else {
        self.delegate.wroteFrame(frame)
      }
    }

    /// The window opened: what was held is reported.
    func release() {
      self.holding = false
      let held = self.held
      self.held = []
      for frame in held { self.delegate.wroteFrame(frame) }
    }
  }

  struct Unexpected: Error {}

  static func request(_ names: [String]) -> Envoy_Service_Discovery_V3_DiscoveryRequest {
    var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
    request.resourceNames = names
    request.typeURL = SecretResource.typeURL
    return request
  }

  @Test func aStreamSecretsStreamIsAnsweredPushedToAndEndedWhenTheClientHalfCloses() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      let first = try await stream.subscribe(["default", "ROOTCA"])
      #expect(try first.secrets().map(\.name) == ["default", "ROOTCA"])
      var ack = Self.request(["default", "ROOTCA"])
      (ack.versionInfo, ack.responseNonce) = (first.versionInfo, first.nonce)
      try await stream.send(ack)
      await running.agent.counters.waitUntil { $0[.acks] == 1 }
      try await running.agent.rotate()
      let pushed = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(pushed.nonce != first.nonce)
      try await stream.receive(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
      let trailers = try await stream.trailers()
      #expect(trailers.first(name: "grpc-status") == "0")
      #expect(trailers.first(name: ":status") == nil)
    }
  }

  @Test func aFetchSecretsCallIsAnsweredOnceAndEnded() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      try await stream.open(.fetchSecrets)
      try await stream.send(Self.request(["default"]), endStream: true)
      try await stream.expectResponseHead()
      let response = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(try response.secrets().map(\.name) == ["default"])
      #expect(try await stream.trailers().first(name: "grpc-status") == "0")
      #expect(running.agent.counters[.fetches] == 1)
    }
  }

  @Test func aFetchSecretsCallWithTwoRequestsIsRefused() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      try await stream.open(.fetchSecrets)
      try await stream.send(Self.request(["default"]))
      try await stream.send(Self.request(["default"]), endStream: true)
      let trailers = try await stream.trailers()
      #expect(trailers.first(name: ":status") == "200")
      #expect(trailers.first(name: "grpc-status") == "13")
      #expect(trailers.first(name: "grpc-message") == "FetchSecrets takes exactly one request message")
      #expect(running.agent.counters[.fetches] == 0)
    }
  }

  @Test func aDeltaSecretsStreamIsAnsweredWithTheNamesItSubscribed() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      try await stream.open(.deltaSecrets)
      var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
      request.typeURL = SecretResource.typeURL
      request.resourceNamesSubscribe = ["default", "ROOTCA"]
      try await stream.send(request)
      try await stream.expectResponseHead()
      let response = try await stream.response(Envoy_Service_Discovery_V3_DeltaDiscoveryResponse.self)
      #expect(Set(response.resources.map(\.name)) == ["default", "ROOTCA"])
      #expect(!response.nonce.isEmpty)
      try await stream.close()
    }
  }

  @Test func aRequestForAnotherServiceIsUnimplementedTrailersOnlyAndReset() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      let head: HPACKHeaders = [
        ":method": "POST", ":scheme": "http", ":path": "/other.Service/Call", "content-type": "application/grpc",
      ]
      try await stream.receive(.headers(.init(headers: head)))
      let trailers = try await stream.trailers()
      #expect(trailers.first(name: ":status") == "200")
      #expect(trailers.first(name: "grpc-status") == "12")
      guard case .rstStream(.noError) = try await stream.next() else {
        Issue.record("a client still sending was not stopped")
        return
      }
    }
  }

  @Test func aSecondServiceAnswersNextToSDSOnOneConnection() async throws {
    try await RunningAgent.with { running in
      let connection = try await Connection(running, others: [EchoSocketService()])
      let sds = Stream(connection: connection, id: 1)
      let echo = Stream(connection: connection, id: 3)
      try await sds.open(.streamSecrets)
      try await sds.send(Self.request(["default"]))
      try await echo.open(path: EchoSocketService.path, extra: ["x-echo": "on"])
      try await echo.receive(.data(.init(data: .byteBuffer(GRPCMessageDeframer.frame([7, 8, 9], allocator: .init())))))
      try await sds.expectResponseHead()
      let secrets = try await sds.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(try secrets.secrets().map(\.name) == ["default"])
      try await echo.expectResponseHead()
      guard case .data(let body) = try await echo.next(), case .byteBuffer(let echoed) = body.data else {
        throw Unexpected()
      }
      #expect(Array(echoed.readableBytesView) == [0, 0, 0, 0, 3, 7, 8, 9])
      try await echo.receive(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
      #expect(try await echo.trailers().first(name: "grpc-status") == "0")
      try await sds.receive(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
      #expect(try await sds.trailers().first(name: "grpc-status") == "0")
    }
  }

  @Test func aSecondServiceRefusesARequestWithoutTheHeaderItRequires() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running, others: [EchoSocketService()])
      try await stream.open(path: EchoSocketService.path)
      let trailers = try await stream.trailers()
      #expect(trailers.first(name: "grpc-status") == "3")
      #expect(trailers.first(name: "grpc-message") == "x-echo: on is required")
      #expect(running.agent.counters.openStreams == 0)
    }
  }

  @Test func anUnknownServiceNamesEveryServiceTheSocketServes() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running, others: [EchoSocketService()])
      try await stream.open(path: "/test.Echo/Shout")
      let trailers = try await stream.trailers()
      #expect(trailers.first(name: "grpc-status") == "12")
      let message = try #require(trailers.first(name: "grpc-message"))
      #expect(message.contains(SDSSocketService.name) && message.contains("test.Echo"))
    }
  }

  @Test func aStreamTheClientResetsLeavesNothingBehind() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      _ = try await stream.subscribe(["default", "ROOTCA"])
      #expect(running.agent.counters.openStreams == 1)
      try await stream.close()
      await running.agent.counters.waitUntil { $0.openStreams == 0 }
      #expect(running.agent.cache.subscriberCount == 0)
    }
  }

  @Test func aPushWaitsUntilTheHTTP2HandlerLetsTheLastResponseOut() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      let (channel, relay) = (stream.channel, stream.connection.relay)
      var acked = try await stream.subscribe(["default"])
      try await channel.testingEventLoop.executeInContext { relay.holding = true }
      for sent in 2...3 {
        var ack = Self.request(["default"])
        (ack.versionInfo, ack.responseNonce) = (acked.versionInfo, acked.nonce)
        try await stream.send(ack)
        try await running.agent.rotate()
        await running.agent.counters.waitUntil { $0[.responsesSent] == sent }
        try await channel.testingEventLoop.executeInContext {}
        if sent == 2 {
          // Written, but held by the HTTP/2 handler: the client's window is closed.
          acked = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
        }
      }
      #expect(try await channel.readOutbound(as: HTTP2Frame.self) == nil)
      try await channel.testingEventLoop.executeInContext { relay.release() }
      let held = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(held.nonce != acked.nonce)
      #expect(held.versionInfo != acked.versionInfo)
    }
  }

  @Test func theClientsWindowIsOpenedAgainOnceHalfUsed() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      let channel = stream.channel
      _ = try await stream.subscribe(["default"])
      for (id, size) in [(HTTP2StreamID.rootStream, 40_000), (stream.id, 20_000), (HTTP2StreamID(99), 100)] {
        try await channel.testingEventLoop.executeInContext {
          channel.pipeline.fireUserInboundEventTriggered(
            NIOHTTP2WindowUpdatedEvent(streamID: id, inboundWindowSize: size, outboundWindowSize: nil))
        }
      }
      // Only the half-used window of an open stream: not the connection's, at 40,000 of 65,535,
      // nor a stream the connection does not have.
      let update = try await channel.waitForOutboundWrite(as: HTTP2Frame.self)
      #expect(update.streamID == stream.id)
      guard case .windowUpdate(let increment) = update.payload else {
        Issue.record("expected WINDOW_UPDATE, got \(update.payload)")
        return
      }
      #expect(increment == 65_535 - 20_000)
      #expect(try await channel.readOutbound(as: HTTP2Frame.self) == nil)
    }
  }
}
