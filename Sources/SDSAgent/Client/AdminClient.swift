import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SDSAgentCore

/// A minimal HTTP/1.1 client for the admin endpoint (loopback TCP or Unix socket), for the
/// drill and operators' scripts.
package enum AdminClient {
  package struct Response: Sendable {
    package let status: Int
    package let body: String

    /// The body as a terminal may show it: its lines kept, every other control character
    /// escaped (`BoundedText.escaped`), whatever answered on the address.
    package var printableBody: String {
      self.body.split(separator: "\n", omittingEmptySubsequences: false).map { BoundedText.escaped(String($0)) }
        .joined(separator: "\n")
    }
  }

  /// The most of an answer's body read; a longer one is refused, since whatever answers on the
  /// address (an agent or not) must not make `status` or `drill` hold unbounded memory. A
  /// node agent's `/status` with thousands of streams stays far below it.
  package static let maximumBodyBytes = 16 << 20

  private typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

  /// One request on a fresh connection; `timeout` bounds the connection attempt and, separately,
  /// the exchange.
  package static func request(
    _ method: String,
    _ path: String,
    at address: AgentConfiguration.AdminAddress,
    body: [UInt8] = [],
    timeout: Duration = .seconds(10),
    maximumBodyBytes: Int = AdminClient.maximumBodyBytes
  ) async throws(AgentError) -> Response {
    let connection = try await self.connect(to: address, timeout: timeout)
    do {
      // Closing ends the exchange still reading, so it can be awaited.
      let answer = try await withTimeLimit(
        timeout, on: ContinuousClock(), onTimeout: { connection.channel.close(promise: nil) }
      ) {
        try await self.exchange(
          method, path, body: body, at: address, on: connection, maximumBodyBytes: maximumBodyBytes)
      }
      guard let response = answer else {
        throw AgentError(
          .connection,
          "the admin endpoint \(address) accepted the connection but did not answer \(method) \(path) within \(timeout); the agent may be stuck: check its log"
        )
      }
      return response
    } catch let error as AgentError {
      throw error
    } catch {
      throw AgentError(.connection, "the admin endpoint \(address) failed during \(method) \(path)", cause: error)
    }
  }

  private static func connect(
    to address: AgentConfiguration.AdminAddress,
    timeout: Duration
  ) async throws(AgentError) -> Connection {
    let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(TimeAmount(timeout))
    let initializer: @Sendable (any Channel) -> EventLoopFuture<Connection> = { channel in
      channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHTTPClientHandlers()
        return try Connection(wrappingChannelSynchronously: channel)
      }
    }
    do {
      switch address {
      case .loopback(let host, let port):
        return try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
      case .unixSocket(let path):
        guard let socket = try UnixSocketAddress(path: path).fileAddress else {
          throw AgentError(.socketPath, "\(path) is not a filesystem path")
        }
        return try await bootstrap.connect(to: socket, channelInitializer: initializer)
      }
    } catch let error as AgentError {
      throw error
    } catch let error as IOError where error.errnoCode == EACCES {
      throw AgentError(.permissionDenied, Self.whoMayAsk(address, error))
    } catch {
      throw AgentError(
        .connection, "cannot connect to the admin endpoint \(address)",
        remedy: "is sds-agent running with --admin \(address)?", cause: error)
    }
  }

  /// The admin socket's directory says who may connect: its owner (the agent's account) and root.
  private static func whoMayAsk(_ address: AgentConfiguration.AdminAddress, _ error: IOError) -> String {
    guard case .unixSocket(let path) = address else {
      return "cannot connect to the admin endpoint \(address): \(error)"
    }
    var owner = "the account the agent runs as"
    var info = stat()
    let directory = (path as NSString).deletingLastPathComponent
    if stat(directory, &info) == 0, let entry = getpwuid(info.st_uid), let name = entry.pointee.pw_name {
      owner = "user \(String(cString: name))"
    }
    return
      "permission denied on the admin socket \(path): only root and \(owner) may ask the agent; run this command as root (sudo) or as that user"
  }

  private static func exchange(
    _ method: String, _ path: String, body requestBody: [UInt8], at address: AgentConfiguration.AdminAddress,
    on connection: Connection, maximumBodyBytes: Int
  ) async throws -> Response {
    try await connection.executeThenClose { inbound, outbound in
      var headers = HTTPHeaders()
      // The endpoint's own address, which its Origin/Host check admits (`AdminOriginPolicy`).
      switch address {
      case .loopback: headers.add(name: "Host", value: "\(address)")
      case .unixSocket: headers.add(name: "Host", value: "localhost")
      }
      if !requestBody.isEmpty { headers.add(name: "Content-Type", value: "application/json") }
      headers.add(name: "Content-Length", value: "\(requestBody.count)")
      headers.add(name: "Connection", value: "close")
      try await outbound.write(
        .head(HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path, headers: headers)))
      if !requestBody.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: requestBody)))) }
      try await outbound.write(.end(nil))
      var status: Int?
      var body = ByteBuffer()
      for try await part in inbound {
        switch part {
        case .head(let head):
          status = Int(head.status.code)
        case .body(var chunk):
          guard body.readableBytes + chunk.readableBytes <= maximumBodyBytes else {
            throw AgentError(
              .connection,
              "the admin endpoint \(address) answered \(method) \(path) with more than \(maximumBodyBytes) bytes; "
                + "is \(address) an sds-agent admin endpoint?")
          }
          body.writeBuffer(&chunk)
        case .end:
          guard let status else { break }
          return Response(status: status, body: String(buffer: body))
        }
      }
      throw AgentError(.connection, "the admin endpoint closed the connection before a complete HTTP response")
    }
  }
}
