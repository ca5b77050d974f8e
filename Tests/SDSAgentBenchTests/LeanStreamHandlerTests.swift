import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SDSAgentCore
import Synchronization
import Testing

@testable import sds_agent_bench

@Suite struct LeanStreamHandlerTests {
  /// What the handler reported, in order.
  final class Events: StreamObserver {
    let allFirstResponses = Milestone()
    let finish = Milestone()
    let log = Mutex<[String]>([])

    func requested(stream: Int, at instant: ContinuousClock.Instant) {
      self.log.withLock { $0.append("requested \(stream)") }
    }
    func firstResponse(stream: Int) { self.log.withLock { $0.append("first \(stream)") } }
    func pushed(stream: Int, at instant: ContinuousClock.Instant) {
      self.log.withLock { $0.append("pushed \(stream)") }
    }
    func failed(stream: Int, subscribedToDefault: Bool, _ error: any Error) {
      self.log.withLock { $0.append("failed \(stream) \(subscribedToDefault)") }
    }
    func close() { self.finish.reach() }
    func take() -> [String] {
      self.log.withLock { log in
        let taken = log
        log = []
        return taken
      }
    }
  }

  static func channel(streams: Int, events: Events) -> EmbeddedChannel {
    let connection = LeanStreamClient.Connection(firstStream: 10, count: streams, pace: nil)
    let handler = LeanStreamHandler(connection, requests: [[1, 2], [3]], tracker: events)
    return EmbeddedChannel(handler: handler)
  }

  static func response(_ streamID: HTTP2StreamID, _ bytes: [UInt8], endStream: Bool = false) -> HTTP2Frame {
    HTTP2Frame(
      streamID: streamID, payload: .data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes)), endStream: endStream)))
  }

  @Test func opensStreamsOnlyAfterTheServersSettings() throws {
    let events = Events()
    let channel = Self.channel(streams: 3, events: events)
    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(), ack: false)))
    #expect(try channel.readOutbound(as: HTTP2Frame.self) == nil)

    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
    var written: [(HTTP2StreamID, String)] = []
    while let frame = try channel.readOutbound(as: HTTP2Frame.self) {
      switch frame.payload {
      case .headers(let headers): written.append((frame.streamID, headers.headers.first(name: ":path") ?? ""))
      case .data(let data):
        guard case .byteBuffer(let body) = data.data else { break }
        written.append((frame.streamID, "\(Array(body.readableBytesView)) end \(data.endStream)"))
      default: break
      }
    }
    #expect(written.map(\.0) == [1, 1, 3, 3, 5, 5])
    #expect(written[0].1 == LeanStreamClient.path)
    #expect(written[1].1 == "[0, 0, 0, 0, 2, 1, 2] end false")
    #expect(written[3].1 == "[0, 0, 0, 0, 1, 3] end false")
    #expect(events.take() == ["requested 10", "requested 11", "requested 12"])

    // A second SETTINGS frame opens nothing more.
    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
    #expect(try channel.readOutbound(as: HTTP2Frame.self) == nil)
  }

  @Test func reportsFirstResponsesPushesAndFailures() throws {
    let events = Events()
    let channel = Self.channel(streams: 3, events: events)
    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
    _ = events.take()
    // Stream 1 (`default`): a response split across two frames, then a push; stream 3 (`ROOTCA`):
    // two responses in one frame, the second not a push; stream 5 is reset.
    try channel.writeInbound(Self.response(1, [0, 0, 0, 0, 2, 9]))
    #expect(events.take() == [])
    try channel.writeInbound(Self.response(1, [9]))
    try channel.writeInbound(Self.response(1, [0, 0, 0, 0, 0]))
    try channel.writeInbound(Self.response(3, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
    try channel.writeInbound(HTTP2Frame(streamID: 5, payload: .rstStream(.refusedStream)))
    #expect(events.take() == ["first 10", "pushed 10", "first 11", "failed 12 true"])

    // Trailers end a stream; the connection's end fails what is still open, each stream once.
    try channel.writeInbound(
      HTTP2Frame(streamID: 3, payload: .headers(.init(headers: ["grpc-status": "14"], endStream: true))))
    #expect(events.take() == ["failed 11 false"])
    _ = try channel.finish()
    #expect(events.take() == ["failed 10 true"])
  }

  @Test func aConnectionErrorClosesTheConnectionAndFailsItsStreams() throws {
    let events = Events()
    let channel = Self.channel(streams: 2, events: events)
    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
    _ = events.take()
    channel.pipeline.fireErrorCaught(NIOHTTP2Errors.unableToParseFrame())
    #expect(!channel.isActive)
    #expect(events.take() == ["failed 10 true", "failed 11 false"])
  }

  @Test func refillsAnInboundWindowOnceHalfIsUsed() throws {
    let events = Events()
    let channel = Self.channel(streams: 1, events: events)
    try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
    while try channel.readOutbound(as: HTTP2Frame.self) != nil {}
    let window = LeanStreamHandler.window
    for (streamID, size) in [
      (HTTP2StreamID.rootStream, window / 2 + 1), (.rootStream, window / 2), (1, 1000), (7, 1000),
    ] {
      channel.pipeline.fireUserInboundEventTriggered(
        NIOHTTP2WindowUpdatedEvent(streamID: streamID, inboundWindowSize: size, outboundWindowSize: nil))
    }
    var updates: [String] = []
    while let frame = try channel.readOutbound(as: HTTP2Frame.self) {
      if case .windowUpdate(let increment) = frame.payload { updates.append("\(Int(frame.streamID)) +\(increment)") }
    }
    #expect(updates == ["0 +\(window - window / 2)", "1 +\(window - 1000)"])
  }
}
