import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#endif

/// A minimal HTTP/1.1 client for the admin endpoint (loopback TCP or Unix socket), for the
/// drill and operators' scripts.
public enum AdminClient {
  public struct Response: Sendable {
    public let status: Int
    public let body: String
  }

  /// Sends the request from a dispatch thread: the socket calls block, and blocking a
  /// thread of the concurrency pool could starve the very server being asked.
  public static func request(
    _ method: String,
    _ path: String,
    at address: AgentConfiguration.AdminAddress
  ) async throws -> Response {
    try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async {
        do {
          continuation.resume(returning: try self.blockingRequest(method, path, at: address))
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  static func blockingRequest(
    _ method: String,
    _ path: String,
    at address: AgentConfiguration.AdminAddress
  ) throws(AgentError) -> Response {
    let fd: Int32
    switch address {
    case .unixSocket(let socketPath):
      fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      var sockaddress = sockaddr_un()
      sockaddress.sun_family = sa_family_t(AF_UNIX)
      withUnsafeMutableBytes(of: &sockaddress.sun_path) { $0.copyBytes(from: socketPath.utf8.prefix($0.count - 1)) }
      let connected = withUnsafePointer(to: &sockaddress) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
      }
      guard connected == 0 else {
        close(fd)
        throw AgentError(.connection, "cannot connect to the admin endpoint \(address): \(Errno.current)")
      }
    case .loopback(let host, let port):
      let isV6 = host.contains(":")
      fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      var connected: Int32 = -1
      if isV6 {
        var sockaddress = sockaddr_in6()
        sockaddress.sin6_family = sa_family_t(AF_INET6)
        sockaddress.sin6_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET6, host, &sockaddress.sin6_addr)
        connected = withUnsafePointer(to: &sockaddress) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
          }
        }
      } else {
        var sockaddress = sockaddr_in()
        sockaddress.sin_family = sa_family_t(AF_INET)
        sockaddress.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &sockaddress.sin_addr)
        connected = withUnsafePointer(to: &sockaddress) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
          }
        }
      }
      guard connected == 0 else {
        close(fd)
        throw AgentError(.connection, "cannot connect to the admin endpoint \(address): \(Errno.current)")
      }
    }
    defer { close(fd) }
    let request = Array(
      "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
      throw AgentError(.connection, "cannot send to the admin endpoint \(address): \(Errno.current)")
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
      let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if count <= 0 { break }
      received.append(contentsOf: buffer[0..<count])
    }
    let text = String(decoding: received, as: UTF8.self)
    guard let statusLine = text.split(separator: "\r\n", maxSplits: 1).first,
      let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else {
      throw AgentError(.connection, "the admin endpoint \(address) sent no HTTP response")
    }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return Response(status: status, body: body)
  }
}
