import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SDSAgent
import SDSAgentCore
import ServiceLifecycle

/// `ca serve --crl-listen`: its current CRL over plain HTTP at the path of `--crl-url`, the
/// distribution point written into every leaf it signs. CRLs are signed, so plain HTTP is what
/// RFC 5280 §4.2.1.13 expects. `GET` (or `HEAD`) of that path answers the signing root's CRL in
/// DER (`application/pkix-crl`); a client that accepts `application/x-pem-file` (the agent) gets
/// every root's CRL in PEM, so that during a root rotation it holds one for each root it trusts.
/// Anything else is 404 or 405; a connection gets one answer and at most `timeLimit`, and at most
/// `maximumConnections` are served at once (more are closed unanswered).
package struct CRLDistributionServer: Service, CustomStringConvertible {
  typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

  let host: String
  let port: Int
  let path: String
  /// Every root's CRL now, and the one of the root that signs.
  let lists: @Sendable () -> (all: [CertificateRevocationList], signing: CertificateRevocationList?)
  let timeLimit: Duration
  static let maximumConnections = 256
  let logger: Logger
  /// The address bound, once it accepts connections.
  package let listening: AsyncStream<SocketAddress>.Continuation
  package let boundAddresses: AsyncStream<SocketAddress>

  package init(
    host: String, port: Int, path: String,
    lists: @escaping @Sendable () -> (all: [CertificateRevocationList], signing: CertificateRevocationList?),
    timeLimit: Duration = .seconds(10), logger: Logger
  ) {
    self.host = host
    self.port = port
    self.path = path.isEmpty ? "/" : path
    self.lists = lists
    self.timeLimit = timeLimit
    self.logger = logger
    (self.boundAddresses, self.listening) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  package var description: String { "CRLDistributionServer(\(self.host):\(self.port))" }

  package func run() async throws {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .bind(host: self.host, port: self.port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          return try Connection(wrappingChannelSynchronously: channel)
        }
      }
    if let address = server.channel.localAddress { self.listening.yield(address) }
    self.logger.info(
      "serving the CRL",
      metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "")", "path": "\(self.path)"])
    let open = OpenConnections()
    try await withGracefulShutdownHandler {
      try await withThrowingDiscardingTaskGroup { group in
        try await server.executeThenClose { connections in
          for try await connection in connections {
            guard open.admit(below: Self.maximumConnections) else {
              connection.channel.close(promise: nil)
              continue
            }
            group.addTask {
              defer { open.release() }
              _ = try? await withTimeLimit(self.timeLimit, on: ContinuousClock()) { await self.serve(connection) }
            }
          }
        }
      }
    } onGracefulShutdown: {
      server.channel.close(promise: nil)
    }
  }

  private func serve(_ connection: Connection) async {
    do {
      try await connection.executeThenClose { inbound, outbound in
        for try await part in inbound {
          guard case .head(let request) = part else { continue }
          let answer = self.answer(request)
          var headers = HTTPHeaders()
          headers.add(name: "Content-Type", value: answer.contentType)
          headers.add(name: "Content-Length", value: "\(answer.body.count)")
          headers.add(name: "Cache-Control", value: "no-cache")
          headers.add(name: "Connection", value: "close")
          try await outbound.write(
            .head(HTTPResponseHead(version: request.version, status: answer.status, headers: headers)))
          if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: answer.body)))) }
          try await outbound.write(.end(nil))
          return
        }
      }
    } catch {
      self.logger.debug("CRL connection failed", metadata: ["error": "\(error)"])
    }
  }

  func answer(_ request: HTTPRequestHead) -> (status: HTTPResponseStatus, contentType: String, body: [UInt8]) {
    let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
    guard path == self.path else {
      return (.notFound, "text/plain", Array("not found: \(BoundedText(path)); the CRL is at \(self.path)\n".utf8))
    }
    guard request.method == .GET || request.method == .HEAD else {
      return (
        .methodNotAllowed, "text/plain", Array("method \(BoundedText(request.method.rawValue)) not allowed\n".utf8)
      )
    }
    let (all, signing) = self.lists()
    if request.headers[canonicalForm: "Accept"].contains(where: { $0.hasPrefix("application/x-pem-file") }),
      !all.isEmpty
    {
      return (.ok, "application/x-pem-file", Array(all.map { $0.pemString + "\n" }.joined().utf8))
    }
    guard let signing else {
      return (.serviceUnavailable, "text/plain", Array("no CRL is signed now; see ca serve's log\n".utf8))
    }
    return (.ok, "application/pkix-crl", signing.derBytes)
  }
}
