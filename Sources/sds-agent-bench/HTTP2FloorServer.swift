import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import SDSAgent
import SDSAgentCore

/// The least a `StreamSecrets` server on swift-nio-http2 does for a stream: its HEADERS and its
/// request's DATA read by `NIOHTTP2Handler` (configured as the agent's), answered with the agent's
/// own response bytes for `default` or `ROOTCA` (`ROOTCA` if the request names it), the stream
/// kept open. No gRPC call, no protobuf, no secrets, no caller: what the agent's transport would
/// cost if the agent's own work cost nothing. Runs in its own process, the bench binary started
/// again with `--serve-http2-floor SOCKET NAME=FILE…`, so its CPU time is its own.
enum HTTP2FloorServer {
  static let serveFlag = "--serve-http2-floor"

  /// Starts the floor server on `directory/floor.sock` with the responses `copyResponses` wrote
  /// and returns once it listens.
  static func start(responses: [String], in directory: String, children: ChildProcesses) async throws -> BaselineServer
  {
    let socketPath = directory + "/floor.sock"
    let pipe = Pipe()
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let child = try ChildProcess(
      executable, [Self.serveFlag, socketPath] + responses.filter { $0 != "--response" }, standardOutput: pipe,
      in: children)
    guard !pipe.fileHandleForReading.availableData.isEmpty else {
      await child.stop()
      throw BenchError(.process, "the HTTP/2 floor server exited before serving")
    }
    return BaselineServer(child: child, socketPath: socketPath)
  }

  /// Serves until the process is stopped; prints one line once it listens. `arguments` are the
  /// socket's path and a `NAME=FILE` pair each for `default` and `ROOTCA`.
  static func serve(arguments: [String]) async throws {
    guard let socketPath = arguments.first else { throw BenchError(.process, "\(Self.serveFlag) needs a socket path") }
    var bodies: [String: [UInt8]] = [:]
    for pair in arguments.dropFirst() {
      let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { throw BenchError(.process, "\(Self.serveFlag) takes NAME=FILE, not \(pair)") }
      bodies[parts[0]] = Array(try Data(contentsOf: URL(fileURLWithPath: parts[1])))
    }
    guard let certificate = bodies[SecretResource.tlsCertificate.name],
      let bundle = bodies[SecretResource.validationContext.name]
    else { throw BenchError(.process, "\(Self.serveFlag) needs the responses for default and ROOTCA") }
    let allocator = ByteBufferAllocator()
    let answers = HTTP2FloorHandler.Answers(
      certificate: GRPCMessageDeframer.frame(certificate, allocator: allocator),
      bundle: GRPCMessageDeframer.frame(bundle, allocator: allocator))
    try? FileManager.default.removeItem(atPath: socketPath)
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      // The agent's backlog: NIO's own (128) refuses part of a burst of 200 connections.
      .serverChannelOption(ChannelOptions.backlog, value: UnixSocketListener.backlog)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          var configuration = NIOHTTP2Handler.ConnectionConfiguration()
          configuration.initialSettings = [HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096)]
          try channel.pipeline.syncOperations.addHandlers(
            NIOHTTP2Handler(mode: .server, connectionConfiguration: configuration),
            HTTP2FloorHandler(answers: answers))
        }
      }
      .bind(unixDomainSocketPath: socketPath)
      .get()
    FileHandle.standardOutput.write(Data("serving on \(socketPath)\n".utf8))
    try await channel.closeFuture.get()
  }
}

/// One connection of the floor server: each stream's request answered with HEADERS and DATA,
/// flushed once per read; the connection's inbound window refilled once half of it is used.
final class HTTP2FloorHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  struct Answers: @unchecked Sendable {
    let certificate: ByteBuffer
    let bundle: ByteBuffer
  }

  private static let head: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
  private static let bundleName = Array(SecretResource.validationContext.name.utf8)
  private static let window = 65_535

  private let answers: Answers
  private var unflushed = false

  init(answers: Answers) {
    self.answers = answers
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = self.unwrapInboundIn(data)
    guard case .data(let body) = frame.payload, case .byteBuffer(let request) = body.data else { return }
    let answer = Self.names(request, Self.bundleName) ? self.answers.bundle : self.answers.certificate
    context.write(
      self.wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .headers(.init(headers: Self.head)))),
      promise: nil)
    context.write(
      self.wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .data(.init(data: .byteBuffer(answer))))),
      promise: nil)
    self.unflushed = true
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    if self.unflushed {
      self.unflushed = false
      context.flush()
    }
    context.fireChannelReadComplete()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let window = event as? NIOHTTP2WindowUpdatedEvent, window.streamID == .rootStream,
      let size = window.inboundWindowSize, size <= Self.window / 2
    {
      let update = HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: Self.window - size))
      context.write(self.wrapOutboundOut(update), promise: nil)
      self.unflushed = true
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if !(error is NIOHTTP2Errors.StreamError) { context.close(promise: nil) }
  }

  /// Whether `name` occurs in `bytes`.
  private static func names(_ bytes: ByteBuffer, _ name: [UInt8]) -> Bool {
    bytes.withUnsafeReadableBytes { raw in
      guard raw.count >= name.count else { return false }
      for start in 0...(raw.count - name.count) where raw[start] == name[0] {
        if zip(raw[start..<start + name.count], name).allSatisfy({ $0 == $1 }) { return true }
      }
      return false
    }
  }
}
