import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// A `FetchSecrets` client that costs as little per call as gRPC over HTTP/2 allows: raw frames
/// on one connection, `concurrency` calls outstanding, each answered call replaced by the next on
/// the event loop, with no task, channel or promise per call. The fetch phase measures both
/// servers with it beside grpc-swift's client, whose own cost per call is most of each figure
/// when client and server share two cores.
enum LeanFetchClient {
  struct Outcome: Sendable {
    var calls = 0
    var failures = 0
  }

  struct CallsFailed: Error, CustomStringConvertible {
    let failures: Int
    var description: String { "\(self.failures) FetchSecrets calls of the lean client failed" }
  }

  /// Calls `path` with `message` (a serialized request) until `seconds` have passed, then waits
  /// for the calls still outstanding.
  static func run(
    socketPath: String, path: String, message: [UInt8], concurrency: Int, seconds: Double
  ) async throws -> Outcome {
    let group = MultiThreadedEventLoopGroup.singleton
    let eventLoop = group.next()
    let done = eventLoop.makePromise(of: Outcome.self)
    let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
    let channel = try await ClientBootstrap(group: eventLoop)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let handler = LeanFetchHandler(
            path: path, message: message, concurrency: concurrency, deadline: deadline, done: done)
          try channel.pipeline.syncOperations.addHandlers(NIOHTTP2Handler(mode: .client), handler)
        }
      }
      .connect(unixDomainSocketPath: socketPath)
      .get()
    do {
      let outcome = try await done.futureResult.get()
      try? await channel.close()
      return outcome
    } catch {
      try? await channel.close()
      throw error
    }
  }
}

/// The calls of one `LeanFetchClient` run, on its connection's event loop.
final class LeanFetchHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  /// Where the lean client's connection window is opened again, as a server's would be.
  static let window = 65_535

  private let head: HPACKHeaders
  private let body: ByteBuffer
  private let concurrency: Int
  private let deadline: NIODeadline
  private let done: EventLoopPromise<LeanFetchClient.Outcome>
  private var nextStreamID: Int32 = 1
  private var outstanding = 0
  private var outcome = LeanFetchClient.Outcome()
  private var finished = false

  init(
    path: String, message: [UInt8], concurrency: Int, deadline: NIODeadline,
    done: EventLoopPromise<LeanFetchClient.Outcome>
  ) {
    self.head = LeanGRPCRequest.head(path: path)
    self.body = LeanGRPCRequest.body(message)
    self.concurrency = concurrency
    self.deadline = deadline
    self.done = done
  }

  func channelActive(context: ChannelHandlerContext) {
    for _ in 0..<self.concurrency { self.call(context: context) }
    context.flush()
    context.fireChannelActive()
  }

  private func call(context: ChannelHandlerContext) {
    let streamID = HTTP2StreamID(self.nextStreamID)
    self.nextStreamID += 2
    self.outstanding += 1
    context.write(
      self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: self.head)))), promise: nil)
    context.write(
      self.wrapOutboundOut(
        HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(self.body), endStream: true)))),
      promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard case .headers(let headers) = self.unwrapInboundIn(data).payload, headers.endStream else { return }
    self.outstanding -= 1
    if headers.headers.first(name: "grpc-status") == "0" {
      self.outcome.calls += 1
    } else {
      self.outcome.failures += 1
    }
    if NIODeadline.now() < self.deadline {
      self.call(context: context)
      context.flush()
    } else if self.outstanding == 0 {
      self.finish(.success(self.outcome))
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    // Each stream takes one response, well inside its window; the connection's is opened again.
    if let window = event as? NIOHTTP2WindowUpdatedEvent, window.streamID == .rootStream,
      let size = window.inboundWindowSize, Self.window - size >= size
    {
      let update = HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: Self.window - size))
      context.writeAndFlush(self.wrapOutboundOut(update), promise: nil)
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.finish(.failure(error))
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.finish(.failure(ChannelError.ioOnClosedChannel))
    context.fireChannelInactive()
  }

  private func finish(_ result: Result<LeanFetchClient.Outcome, any Error>) {
    guard !self.finished else { return }
    self.finished = true
    self.done.completeWith(result)
  }
}
