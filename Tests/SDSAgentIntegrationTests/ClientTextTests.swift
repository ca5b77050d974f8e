import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What a client sends (a resource name, a node id, a NACK message) on its way to a log line, the
/// admin endpoint and an operator's terminal: never a line of its own, never a control character.
@Suite(.timeLimit(.minutes(1))) struct ClientTextTests {
  static let forged = "default\n<2>FORGED entry\r\u{1B}[2J\u{07}\u{9B}31m\u{2028}\u{202E}"

  @Test func boundedTextEscapesEveryControlCharacter() {
    let shown = BoundedText(Self.forged).description
    #expect(shown == #"default\n<2>FORGED entry\r\u{1B}[2J\u{7}\u{9B}31m\u{2028}\u{202E}"#)
    #expect(BoundedText.escaped(shown) == shown, "escaping twice changes the text")
    #expect(
      BoundedText.escaped("spiffe://cluster.local/ns/a/sa/b ünïcode ✓") == "spiffe://cluster.local/ns/a/sa/b ünïcode ✓")
    let cut = BoundedText(String(repeating: "\n", count: 200), limit: 4).description
    #expect(cut == #"\n\n\n\n…(+196 characters)"#)
  }

  @Test(arguments: [
    (AgentConfiguration.LogFormat.plain, false), (AgentConfiguration.LogFormat.plain, true),
    (AgentConfiguration.LogFormat.json, false),
  ])
  func aLogLineStaysOneLine(format: AgentConfiguration.LogFormat, toJournal: Bool) throws {
    let handler = AgentLogHandler(
      label: "test", logging: AgentLogging(level: .debug, format: format, toJournal: toJournal))
    let line = handler.line(
      level: .warning, message: "refused an SDS request \(Self.forged)",
      metadata: ["reason": "\(Self.forged)", "node\nkey": .array(["\u{1B}]0;title\u{07}"])], at: Date())
    #expect(line.hasSuffix("\n") && line.dropLast().allSatisfy { !$0.isNewline }, "\(line.debugDescription)")
    #expect(!line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || (0x7F...0x9F).contains($0.value) })
    if format == .json {
      let object = try #require(
        try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
      let reason = try #require(object["reason"])
      #expect(reason.hasPrefix(#"default\n<2>FORGED"#) && !reason.contains("\u{1B}"))
    } else {
      #expect(line.contains(#"reason="default\n<2>FORGED entry\r\u{1B}[2J"#), "\(line)")
      #expect(line.hasPrefix(toJournal ? "<4>" : "2"))
    }
  }

  @Test func statusShowsAClientsNodeIDAndNackEscaped() throws {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")
    let table = IdentityTable(
      pinned: identity, template: IdentitySettings(keyType: .ecdsaP256, ttl: .seconds(60)), idleTimeout: .seconds(60),
      now: Date())
    let streams = StreamRegistry()
    let id = streams.open(at: Date())
    streams.update(id) {
      $0.nodeID = "evil\u{1B}]0;owned\u{07}\rnode"
      $0.resources = ["default\n<2>forged"]
      $0.lastNackMessage = "bad\u{1B}[2J\u{9B}"
    }
    let status = NodeStatus(table: table, streams: streams, certificateAuthority: "the local CA", now: Date())
    let text = status.text(now: Date())
    #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || (0x7F...0x9F).contains($0.value) })
    #expect(text.contains(#"evil\u{1B}]0;owned\u{7}\rnode"#), "\(text)")
    #expect(status.streams.first?.resources == [#"default\n<2>forged"#])

    // What an endpoint sent is escaped on the reading side too (an older or an impostor agent).
    let raw = #"{"certificate_authority":"x\u001b[2J","identities":[],"trust_bundle":[],"streams":[]}"#
    let decoded = try NodeStatus.decoder.decode(NodeStatus.self, from: Data(raw.utf8))
    #expect(decoded.escaped().certificateAuthority == #"x\u{1B}[2J"#)
    #expect(!decoded.text(now: Date()).contains("\u{1B}"))
  }

  @Test func theAdminClientReadsABoundedAnswer() async throws {
    let listener = try UnixSocketListener.bind(path: TemporaryDirectory.make() + "/admin.sock", mode: 0o600)
    defer {
      close(listener.descriptor)
      listener.removeSocketFile()
    }
    // An endpoint that answers with more than the client reads: 17 MiB, then closes.
    let descriptor = listener.descriptor
    let server = Thread {
      let connection = accept(descriptor, nil, nil)
      guard connection >= 0 else { return }
      defer { close(connection) }
      // The request first: an answer before it is one the HTTP client refuses as unsolicited.
      var request = [UInt8]()
      var buffer = [UInt8](repeating: 0, count: 1024)
      while !request.suffix(4).elementsEqual("\r\n\r\n".utf8) {
        let count = recv(connection, &buffer, buffer.count, 0)
        if count <= 0 { return }
        request += buffer[..<count]
      }
      let total = AdminClient.maximumBodyBytes + (1 << 20)
      let head = "HTTP/1.1 200 OK\r\nContent-Length: \(total)\r\nConnection: close\r\n\r\n"
      // MSG_NOSIGNAL: the client hangs up mid-answer, which must not raise SIGPIPE here.
      _ = head.withCString { send(connection, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
      let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 16)
      var sent = 0
      while sent < total {
        let count = chunk.withUnsafeBytes {
          send(connection, $0.baseAddress, min(chunk.count, total - sent), Int32(MSG_NOSIGNAL))
        }
        if count <= 0 { break }
        sent += count
      }
    }
    server.start()
    await #expect {
      _ = try await AdminClient.request("GET", "/status", at: .unixSocket(path: listener.path))
    } throws: { error in
      (error as? AgentError)?.code == .connection
        && "\(error)".contains("more than \(AdminClient.maximumBodyBytes) bytes")
    }
  }

  @Test(
    arguments: [
      // (Host, Origin, admitted) for an endpoint on 127.0.0.1:15000
      ("127.0.0.1:15000", nil, true), ("localhost:15000", nil, true), ("localhost", nil, true), (nil, nil, true),
      ("127.0.0.1:15000", "http://127.0.0.1:15000", true), ("LOCALHOST:15000", "http://LocalHost:15000", true),
      ("evil.example:15000", nil, false), ("127.0.0.1:15001", nil, false), ("[::1]:15000", nil, false),
      ("127.0.0.1:15000", "http://evil.example", false), ("127.0.0.1:15000", "null", false),
      (nil, "http://evil.example", false), ("127.0.0.1:15000", "https://127.0.0.1:15000", false),
      ("127.0.0.1:15000x", nil, false), ("127.0.0.1:", nil, false),
    ] as [(String?, String?, Bool)])
  func theOriginPolicyOnLoopback(host: String?, origin: String?, admitted: Bool) {
    let policy = AdminOriginPolicy(address: .loopback(host: "127.0.0.1", port: 0), boundPort: 15000)
    let decision = policy.decide(host: host.map { [$0] } ?? [], origin: origin.map { [$0] } ?? [])
    #expect((decision == .admitted) == admitted, "\(decision)")
  }

  @Test func theOriginPolicyOnIPv6AndUnixSockets() {
    let ipv6 = AdminOriginPolicy(address: .loopback(host: "::1", port: 9000), boundPort: nil)
    #expect(ipv6.decide(host: ["[::1]:9000"], origin: ["http://[::1]:9000"]) == .admitted)
    #expect(ipv6.decide(host: ["[::1]:9000", "[::1]:9000"], origin: []) != .admitted, "two Host headers")
    let unix = AdminOriginPolicy(address: .unixSocket(path: "/run/admin.sock"), boundPort: nil)
    #expect(unix.decide(host: ["anything"], origin: []) == .admitted)
    #expect(unix.decide(host: ["localhost"], origin: ["http://localhost"]) != .admitted)
    guard case .refused(let reason) = unix.decide(host: [], origin: ["http://evil.example"]) else {
      Issue.record("a page's Origin was admitted on the Unix socket")
      return
    }
    #expect(reason.contains("http://evil.example") && reason.contains("without an Origin header"))
  }
}
