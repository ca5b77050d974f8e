import Logging
import NIOHTTP1
import SDSAgentCore

/// Who may talk to the admin endpoint: operators' tools, never a web page. A browser on the node
/// can reach loopback TCP — a cross-site `POST /ca/rotate-root` needs no CORS preflight, and a
/// DNS-rebound name lets a page read `GET /status` — so a request is refused when it carries an
/// `Origin` other than the endpoint itself (`null` included), or, on loopback TCP, a `Host` that
/// is not the listen address or `localhost` (with the listen port, or without a port). Browsers
/// send `Origin` on every cross-site `POST` and a `Host` naming the page's site; tools (curl,
/// Prometheus, `sds-agent status`) send no `Origin`, and may send no `Host`. A Unix socket
/// cannot be reached from a page at all; it refuses any `Origin` and takes any `Host`.
package struct AdminOriginPolicy: Sendable, Equatable {
  package enum Decision: Sendable, Equatable {
    case admitted
    /// Refused before any route runs; the reason names the header and what to do instead.
    case refused(String)
  }

  /// Lowercased host names a `Host` header may name, or nil to take any (a Unix socket).
  package let hostNames: Set<String>?
  /// The port a `Host` header may carry.
  package let port: Int?
  /// The origins (`http://host:port`) a request may come from.
  package let origins: Set<String>

  /// The policy for an endpoint listening on `address`; `boundPort` is the port it got (the
  /// configured one, or the kernel's choice for port 0).
  package init(address: AgentConfiguration.AdminAddress, boundPort: Int?) {
    switch address {
    case .loopback(let host, let configuredPort):
      let port = boundPort ?? configuredPort
      let names: Set<String> = [host.contains(":") ? "[\(host.lowercased())]" : host.lowercased(), "localhost"]
      self.hostNames = names
      self.port = port
      self.origins = Set(names.flatMap { port == 80 ? ["http://\($0)", "http://\($0):80"] : ["http://\($0):\(port)"] })
    case .unixSocket:
      self.hostNames = nil
      self.port = nil
      self.origins = []
    }
  }

  /// The answer to one request: refused before any route runs, or what `routes` answer.
  package func answer(
    _ request: HTTPRequestHead, body: [UInt8] = [], from routes: any AdminResponder, logger: Logger
  ) async -> AdminResponse {
    switch self.decide(request) {
    case .admitted:
      return await routes.respond(method: request.method.rawValue, target: request.uri, body: body)
    case .refused(let reason):
      logger.warning(
        "refused an admin request from a web page",
        metadata: [
          "method": "\(BoundedText(request.method.rawValue))", "target": "\(BoundedText(request.uri))",
          "origin": "\(BoundedText(request.headers["Origin"].joined(separator: ", ")))",
          "host": "\(BoundedText(request.headers["Host"].joined(separator: ", ")))",
        ])
      return .text(403, reason + "\n")
    }
  }

  package func decide(_ head: HTTPRequestHead) -> Decision {
    self.decide(host: head.headers["Host"], origin: head.headers["Origin"])
  }

  package func decide(host: [String], origin: [String]) -> Decision {
    if !origin.isEmpty {
      guard origin.count == 1, let value = origin.first, self.origins.contains(value.lowercased()) else {
        return .refused(
          "the admin endpoint takes no requests from web pages: Origin \(BoundedText(origin.joined(separator: ", "))) "
            + "is not \(self.origins.isEmpty ? "allowed on a Unix socket" : "this endpoint"); "
            + "call it from a shell (curl, sds-agent status) without an Origin header")
      }
    }
    guard let hostNames = self.hostNames, !host.isEmpty else { return .admitted }
    guard host.count == 1, let value = host.first, self.admits(host: value.lowercased(), names: hostNames) else {
      let allowed = hostNames.sorted().map { "\($0):\(self.port ?? 0)" }.joined(separator: " or ")
      return .refused(
        "the admin endpoint answers only to its own address: Host \(BoundedText(host.joined(separator: ", "))) "
          + "is not \(allowed) (a DNS-rebound name is refused); "
          + "prefer a Unix socket (--admin unix:/run/sds-agent/private/admin.sock)")
    }
    return .admitted
  }

  private func admits(host: String, names: Set<String>) -> Bool {
    // Without a port: a browser names the port unless it is 80, so only a tool sends this.
    if names.contains(host) { return true }
    guard let colon = host.lastIndex(of: ":"), names.contains(String(host[..<colon])) else { return false }
    return Int(host[host.index(after: colon)...]) == self.port
  }
}
