import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SDSAgentCore
import ServiceLifecycle

/// The admin endpoint: a small HTTP/1.1 server on loopback or a Unix socket (mode 0600), never
/// a public interface. It exists only when `--admin` is set. Its routes are for the node's
/// operators; a request from a web page is refused before any route runs (`AdminOriginPolicy`).
package struct AdminServer: Service, CustomStringConvertible {
  typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

  let address: AgentConfiguration.AdminAddress
  let routes: any AdminResponder
  package let listening: Milestone
  /// The most of a request body a route is handed; a route refuses a longer one.
  static let maximumBodyLength = 16 * 1024
  let logger: Logger

  package init(
    address: AgentConfiguration.AdminAddress, routes: any AdminResponder, listening: Milestone, logger: Logger
  ) {
    self.address = address
    self.routes = routes
    self.listening = listening
    self.logger = logger
  }

  package var description: String { "AdminServer(\(self.address))" }

  package func run() async throws {
    let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    let initializer: @Sendable (any Channel) -> EventLoopFuture<Connection> = { channel in
      channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
        return try Connection(wrappingChannelSynchronously: channel)
      }
    }
    let server: NIOAsyncChannel<Connection, Never>
    var socketFile: UnixSocketListener?
    switch self.address {
    case .loopback(let host, let port):
      server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
    case .unixSocket(let path):
      let listener = try UnixSocketListener.bind(path: path, mode: 0o600)
      socketFile = listener
      server = try await bootstrap.bind(NIOBSDSocket.Handle(listener.descriptor), childChannelInitializer: initializer)
    }
    defer { socketFile?.removeSocketFile() }
    let policy = AdminOriginPolicy(address: self.address, boundPort: server.channel.localAddress?.port)
    self.listening.reach()
    self.logger.info(
      "admin endpoint listening",
      metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "\(self.address)")"])
    try await withGracefulShutdownHandler {
      try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { connections in
          for try await connection in connections {
            group.addTask { await self.serve(connection, policy: policy) }
          }
        }
      }
    } onGracefulShutdown: {
      server.channel.close(promise: nil)
    }
  }

  private func serve(_ connection: Connection, policy: AdminOriginPolicy) async {
    do {
      try await connection.executeThenClose { inbound, outbound in
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        for try await part in inbound {
          switch part {
          case .head(let requestHead):
            head = requestHead
          case .body(let bytes):
            // Enough to tell a request body that is too long; the rest is not kept.
            body += bytes.readableBytesView.prefix(Self.maximumBodyLength + 1 - body.count)
          case .end:
            guard let request = head else { continue }
            let response = await policy.answer(request, body: body, from: self.routes, logger: self.logger)
            let body = ByteBuffer(string: response.body)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            headers.add(name: "Connection", value: "close")
            try await outbound.write(
              .head(
                HTTPResponseHead(version: request.version, status: .init(statusCode: response.status), headers: headers)
              )
            )
            try await outbound.write(.body(.byteBuffer(body)))
            try await outbound.write(.end(nil))
            return
          }
        }
      }
    } catch {
      self.logger.debug("admin connection failed", metadata: ["error": "\(error)"])
    }
  }
}
