import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The admin endpoint on loopback TCP against what a browser on the node can send: a cross-site
/// `POST` and a DNS-rebound `Host` are refused before any route runs; operators' tools work.
@Suite(.timeLimit(.minutes(1))) struct AdminOriginTests {
  @Test func aCrossSitePostIsRefusedAndRotatesNothing() async throws {
    try await Self.withAgentOnLoopback { running, port in
      let serial = running.agent.cache.current.svid?.leaf.serialHex
      for origin in ["http://evil.example", "null", "http://127.0.0.1:\(port + 1)", "https://127.0.0.1:\(port)"] {
        let answer = try await RawHTTP.request(
          "POST", "/rotate", port: port, headers: ["Host: 127.0.0.1:\(port)", "Origin: \(origin)"])
        #expect(answer.status == 403, "Origin \(origin): \(answer.body)")
        #expect(answer.body.contains("Origin"))
      }
      let rotateRoot = try await RawHTTP.request(
        "POST", "/ca/rotate-root?overlap=1s", port: port,
        headers: ["Host: 127.0.0.1:\(port)", "Origin: http://evil.example"])
      #expect(rotateRoot.status == 403)
      #expect(running.agent.cache.current.svid?.leaf.serialHex == serial, "a refused POST /rotate rotated")
    }
  }

  @Test func aForeignHostIsRefused() async throws {
    try await Self.withAgentOnLoopback { _, port in
      for host in ["evil.example:\(port)", "evil.example", "127.0.0.1.evil.example:\(port)", "127.0.0.1:\(port + 1)"] {
        let answer = try await RawHTTP.request("GET", "/status", port: port, headers: ["Host: \(host)"])
        #expect(answer.status == 403, "Host \(host): \(answer.body)")
        #expect(answer.body.contains("Host") && !answer.body.contains("identities"))
      }
    }
  }

  @Test func operatorsToolsAreAdmitted() async throws {
    try await Self.withAgentOnLoopback { _, port in
      let admitted: [[String]] = [
        ["Host: 127.0.0.1:\(port)"], ["Host: localhost:\(port)"], ["Host: LOCALHOST"], [],
        ["Host: 127.0.0.1:\(port)", "Origin: http://127.0.0.1:\(port)"],
        ["Host: localhost:\(port)", "Origin: http://localhost:\(port)"],
      ]
      for headers in admitted {
        let answer = try await RawHTTP.request("GET", "/healthz", port: port, headers: headers)
        #expect(answer.status == 200, "\(headers): \(answer.body)")
      }
      let status = try await AdminClient.request("GET", "/status", at: .loopback(host: "127.0.0.1", port: port))
      #expect(status.status == 200)
    }
  }

  static func withAgentOnLoopback(_ body: (RunningAgent, Int) async throws -> Void) async throws {
    let port = try RawHTTP.freePort()
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.admin = .loopback(host: "127.0.0.1", port: port)
    try await RunningAgent.with(try builder.build()) { running in
      await running.agent.waitForAdminEndpoint()
      try await body(running, port)
    }
  }
}

/// One HTTP/1.0-style exchange with exactly the given header lines, as a browser or an attacker
/// would send them (the admin client always adds its own `Host`).
enum RawHTTP {
  struct Answer {
    let status: Int
    let body: String
  }

  /// Runs on a thread of its own: blocking reads on the concurrency pool would starve the agent
  /// under test, whose routes run there.
  static func request(_ method: String, _ target: String, port: Int, headers: [String]) async throws -> Answer {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Answer, any Error>) in
      Thread {
        done.resume(with: Result { try Self.blockingRequest(method, target, port: port, headers: headers) })
      }.start()
    }
  }

  private static func blockingRequest(_ method: String, _ target: String, port: Int, headers: [String]) throws -> Answer
  {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = Self.loopback(port: port)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED) }
    let request = (["\(method) \(target) HTTP/1.1"] + headers + ["Connection: close", "", ""]).joined(separator: "\r\n")
    _ = request.withCString { write(fd, $0, strlen($0)) }
    var received = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = read(fd, &buffer, buffer.count)
      if count <= 0 { break }
      received += buffer[..<count]
    }
    let text = String(decoding: received, as: UTF8.self)
    let statusLine = text.prefix { $0 != "\r" }.split(separator: " ")
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return Answer(status: statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0, body: body)
  }

  /// A port nothing listens on now (the kernel's choice for a socket bound to port 0).
  static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = Self.loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  private static func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
  }
}
