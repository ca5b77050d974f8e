import Foundation
import GRPCCore
import Logging
import NIOCore
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import ServiceLifecycle
import Testing

/// The SDS socket's limits on connections: its listen backlog, the process's descriptor limit,
/// and which connections the transport closes.
@Suite(.timeLimit(.minutes(1))) struct ConnectionLimitsTests {
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ss")))
  func theSocketKeepsItsBacklogOnceTheTransportListens() async throws {
    try await RunningAgent.with { running in
      await running.agent.waitForSDSListening()
      let somaxconn =
        (try? String(contentsOfFile: "/proc/sys/net/core/somaxconn", encoding: .utf8))
        .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? UnixSocketListener.backlog
      // `ss` shows a listening socket's backlog as its Send-Q: `u_str LISTEN 0 4096 /path …`.
      let listing = try Self.run("/usr/bin/ss", ["-xlnH"])
      let line = try #require(listing.split(separator: "\n").first { $0.contains(" \(running.socketPath) ") })
      let columns = line.split(separator: " ", omittingEmptySubsequences: true)
      #expect(columns.count > 3 && Int32(columns[3]) == min(UnixSocketListener.backlog, somaxconn))
    }
  }

  @Test func theSoftDescriptorLimitIsRaisedToTheHardLimit() throws {
    let (soft, hard) = DescriptorLimit.current
    var lowered = rlimit(rlim_cur: rlim_t(min(soft, 1024, hard)), rlim_max: rlim_t(hard))
    #expect(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &lowered) == 0)
    DescriptorLimit.raiseToHardLimit(logger: .init(label: "test"))
    #expect(DescriptorLimit.current.soft == hard)
  }

  @Test func theDefaultsCloseIdleAndSilentConnectionsButNotStreams() {
    let limits = SDSServerLimits()
    #expect(limits.maximumIdleTime == .seconds(300))
    #expect(limits.keepaliveTime == .seconds(60))
    #expect(limits.silentPeerTimeout == .seconds(120))
    #expect(limits.keepaliveTime < limits.maximumIdleTime)
    #expect(limits.keepaliveTime < limits.silentPeerTimeout)
    #expect(limits.maximumStreamsPerConnection == 4096)
    #expect(limits.maximumResets >= limits.maximumStreamsPerConnection)
  }

  @Test func aSilentPeerIsClosedWhileAStreamOlderThanTheIdleTimeIsKept() async throws {
    // The defaults (300 s idle, a ping every 60 s, 120 s of silence), scaled down with room for
    // a loaded machine. The silent connection outlives no idle timer: only silence closes it.
    var limits = SDSServerLimits()
    limits.maximumIdleTime = .seconds(30)
    limits.keepaliveTime = .milliseconds(500)
    limits.silentPeerTimeout = .milliseconds(2500)
    try await RunningAgent.with { running in
      let path = running.directory + "/scaled.sock"
      let listener = try UnixSocketListener.bind(path: path, mode: 0o600)
      let listening = Milestone()
      let server = SDSSocketServer(
        descriptor: listener.descriptor, service: running.agent.sdsService, peerCredentials: false, limits: limits,
        logger: Self.debugLogger, onListening: { listening.reach() })
      let group = ServiceGroup(services: [server], logger: .init(label: "scaled"))
      try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        await listening.wait()
        try await SDSClient.withConnection(socketPath: path) { client in
          try await SDSStream.with(client: client) { stream in
            stream.request(["default"])
            let first = try #require(try await stream.next())
            // A peer that connects and never speaks is closed after the silence allowed; by then
            // the stream, opened before it, has been without a request for longer than that and
            // is kept: its client answers the keepalive's pings.
            let started = ContinuousClock.now
            let closed = try await Task.detached { try Self.connectAndWaitForClose(path) }.value
            print("a silent connection was closed after \(ContinuousClock.now - started)")
            #expect(closed)
            try await running.agent.rotate()
            let pushed = try #require(try await stream.next())
            #expect(pushed.nonce != first.nonce)
          }
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
      }
    }
  }

  static var debugLogger: Logger {
    var logger = Logger(label: "scaled")
    logger.logLevel = .debug
    return logger
  }

  /// Connects to `path`, sends nothing and reads until the server closes: `true` once it has.
  static func connectAndWaitForClose(_ path: String) throws -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard connected == 0 else { return false }
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = read(fd, &buffer, buffer.count)
      if count == 0 || (count < 0 && errno == ECONNRESET) { return true }
      if count < 0 { return false }
    }
  }

  static func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: output, as: UTF8.self)
  }
}
