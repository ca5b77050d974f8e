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

/// The SDS socket's stream handler in-process: HTTP/2 frames of one stream in, frames out, on a
/// `NIOAsyncTestingChannel` instead of a socket; the same handler the socket runs.
@Suite(.timeLimit(.minutes(2))) struct GRPCStreamHandlerTests {
  typealias Payload = HTTP2Frame.FramePayload

  /// One stream of a connection, its handler serving `running`'s agent: its SDS service and
  /// any `others` the socket serves next to it.
  struct Stream {
    let channel: NIOAsyncTestingChannel

    init(
      _ running: RunningAgent, others: [any GRPCSocketService] = [], connection: Connection = Connection(),
      id: Int = 1
    ) async throws {
      let service = running.agent.sdsService
      let services = GRPCServiceTable([SDSSocketService(service: service)] + others)
      self.channel = try await NIOAsyncTestingChannel(loop: connection.loop) { channel in
        try channel.pipeline.syncOperations.addHandler(
          GRPCStreamHandler(
            connection: connection.handler, services: services, callers: service.callers,
            limits: SDSServerLimits(), streamID: HTTP2StreamID(id)))
      }
    }

    func open(_ method: SDSSocketService.Method, endStream: Bool = false) async throws {
      try await self.open(path: "/\(SDSSocketService.name)/\(method.rawValue)", endStream: endStream)
    }

    func open(path: String, extra: HPACKHeaders = [:], endStream: Bool = false) async throws {
      var head: HPACKHeaders = [
        ":method": "POST", ":scheme": "http", ":path": path, "content-type": "application/grpc", "te": "trailers",
      ]
      head.add(contentsOf: extra)
      try await self.channel.writeInbound(Payload.headers(.init(headers: head, endStream: endStream)))
    }

    func send(_ message: some SwiftProtobuf.Message, endStream: Bool = false) async throws {
      let framed = GRPCMessageDeframer.frame(try message.serializedBytes(), allocator: .init())
      try await self.channel.writeInbound(Payload.data(.init(data: .byteBuffer(framed), endStream: endStream)))
    }

    func next() async throws -> Payload {
      try await self.channel.waitForOutboundWrite(as: Payload.self)
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

    /// The trailers, which must be the next frame and end the stream.
    func trailers() async throws -> HPACKHeaders {
      guard case .headers(let trailers) = try await self.next(), trailers.endStream else { throw Unexpected() }
      return trailers.headers
    }
  }

  /// The connection streams share, as on the socket: one handler, one event loop.
  struct Connection: @unchecked Sendable {
    let loop = NIOAsyncTestingEventLoop()
    /// Used on `loop` only.
    let handler = GRPCConnectionHandler(credentials: nil, limits: SDSServerLimits(), logger: .init(label: "test"))
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
      try await stream.open(.streamSecrets)
      try await stream.send(Self.request(["default", "ROOTCA"]))
      try await stream.expectResponseHead()
      let first = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(try first.secrets().map(\.name) == ["default", "ROOTCA"])
      var ack = Self.request(["default", "ROOTCA"])
      (ack.versionInfo, ack.responseNonce) = (first.versionInfo, first.nonce)
      try await stream.send(ack)
      await running.agent.counters.waitUntil { $0[.acks] == 1 }
      try await running.agent.rotate()
      let pushed = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(pushed.nonce != first.nonce)
      try await stream.channel.writeInbound(Payload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
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
      try await stream.channel.close()
    }
  }

  @Test func aRequestForAnotherServiceIsUnimplementedTrailersOnlyAndReset() async throws {
    try await RunningAgent.with { running in
      let stream = try await Stream(running)
      let head: HPACKHeaders = [
        ":method": "POST", ":scheme": "http", ":path": "/other.Service/Call", "content-type": "application/grpc",
      ]
      try await stream.channel.writeInbound(Payload.headers(.init(headers: head)))
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
      let connection = Connection()
      let sds = try await Stream(running, others: [EchoSocketService()], connection: connection, id: 1)
      let echo = try await Stream(running, others: [EchoSocketService()], connection: connection, id: 3)
      try await sds.open(.streamSecrets)
      try await sds.send(Self.request(["default"]))
      try await echo.open(path: EchoSocketService.path, extra: ["x-echo": "on"])
      try await echo.channel.writeInbound(
        Payload.data(.init(data: .byteBuffer(GRPCMessageDeframer.frame([7, 8, 9], allocator: .init())))))
      try await sds.expectResponseHead()
      let secrets = try await sds.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(try secrets.secrets().map(\.name) == ["default"])
      try await echo.expectResponseHead()
      guard case .data(let body) = try await echo.next(), case .byteBuffer(let echoed) = body.data else {
        throw Unexpected()
      }
      #expect(Array(echoed.readableBytesView) == [0, 0, 0, 0, 3, 7, 8, 9])
      try await echo.channel.writeInbound(Payload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
      #expect(try await echo.trailers().first(name: "grpc-status") == "0")
      try await sds.channel.writeInbound(Payload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
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
      try await stream.open(.streamSecrets)
      try await stream.send(Self.request(["default", "ROOTCA"]))
      try await stream.expectResponseHead()
      _ = try await stream.response(Envoy_Service_Discovery_V3_DiscoveryResponse.self)
      #expect(running.agent.counters.openStreams == 1)
      // The HTTP/2 handler closes a stream's channel when the client resets it.
      try await stream.channel.close()
      await running.agent.counters.waitUntil { $0.openStreams == 0 }
      #expect(running.agent.cache.subscriberCount == 0)
    }
  }
}
