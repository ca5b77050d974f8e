import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import Synchronization

extension FuzzTarget {
  /// The admin endpoint's request path: bytes through NIO's HTTP/1.1 request decoder, then
  /// `AdminOriginPolicy.answer` (the Origin/Host check, then `ca serve`'s routes). Checked: a request
  /// a web page could send (a foreign `Origin`, or on loopback a foreign `Host`) never reaches a
  /// route; every answer has a known status and a body without control characters but newlines.
  static let adminRouter = FuzzTarget(
    name: "admin-router",
    summary: "HTTP request heads through AdminOriginPolicy and the admin routes"
  ) { data in
    var input = FuzzInput(data)
    let address: AgentConfiguration.AdminAddress =
      switch input.byte() % 3 {
      case 0: .loopback(host: "127.0.0.1", port: 15000)
      case 1: .loopback(host: "::1", port: 15000)
      default: .unixSocket(path: "/run/sds-agent/private/admin.sock")
      }
    let policy = AdminOriginPolicy(address: address, boundPort: nil)
    let heads = AdminRouterFixture.decodeHeads(input.bytes(Int.max))
    var reached = 0
    for head in heads {
      let routes = RecordingRoutes(routes: AdminRouterFixture.shared.routes)
      let response = runBlocking { await policy.answer(head, from: routes, logger: AdminRouterFixture.logger) }
      let wasReached = routes.reached.withLock { $0 }
      let origins = head.headers["Origin"]
      if !origins.isEmpty, origins.count > 1 || !policy.origins.contains(origins[0].lowercased()) {
        FuzzTarget.check(!wasReached, "Origin \(origins) reached a route on \(address)")
      }
      if case .loopback = address, !head.headers["Host"].isEmpty {
        let hosts = head.headers["Host"]
        let name = hosts.count == 1 ? AdminRouterFixture.hostName(hosts[0].lowercased()) : nil
        if name.map({ !(policy.hostNames ?? []).contains($0) }) ?? true {
          FuzzTarget.check(!wasReached, "Host \(hosts) reached a route on \(address)")
        }
      }
      FuzzTarget.check(
        [200, 202, 400, 403, 404, 405, 409].contains(response.status), "status \(response.status) for \(head.uri)")
      FuzzTarget.check(
        !response.body.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) },
        "a control character in the answer to \(head.uri.debugDescription): \(response.body.debugDescription)")
      if wasReached { reached += 1 }
    }
    return "\(heads.count) request(s), \(reached) routed"
  }
}

/// Records whether a request got past the policy to the routes.
private final class RecordingRoutes: AdminResponder {
  let routes: any AdminResponder
  let reached = Mutex(false)

  init(routes: any AdminResponder) {
    self.routes = routes
  }

  func respond(method: String, target: String) async -> AdminResponse {
    self.reached.withLock { $0 = true }
    return await self.routes.respond(method: method, target: target)
  }
}

private struct AdminRouterFixture: Sendable {
  static let shared = AdminRouterFixture()
  static let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }

  /// `ca serve`'s routes with an embedded CA and no rotation: `POST /ca/rotate-root` is refused
  /// (409), so the fuzzer cannot start one.
  let routes: CAServerAdminRoutes

  init() {
    let material = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: material))
    self.routes = CAServerAdminRoutes(
      trust: TrustRoutes(rotation: nil, ca: ca, trustDomain: "cluster.local", notRotatable: "fuzzing"))
  }

  /// The request heads NIO's decoder makes of `bytes`; an error ends the connection, as it does
  /// in the server.
  static func decodeHeads(_ bytes: Data) -> [HTTPRequestHead] {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    do {
      try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
      try channel.writeInbound(ByteBuffer(bytes: bytes))
    } catch {
      // What was decoded before the error is still read below.
    }
    var heads: [HTTPRequestHead] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
      if case .head(let head) = part { heads.append(head) }
    }
    return heads
  }

  /// The host name of a `Host` value without its port (`[::1]` kept bracketed).
  static func hostName(_ host: String) -> String {
    if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[...end]) }
    return host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? host
  }
}
