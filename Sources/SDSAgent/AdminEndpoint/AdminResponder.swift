/// What an admin endpoint answers: the agent's routes (`AdminRoutes`) or `ca serve`'s
/// (`CAServerAdminRoutes`).
package protocol AdminResponder: Sendable {
  /// The answer to `method` on `target` (a path with its query).
  func respond(method: String, target: String) async -> AdminResponse
  /// The same, for routes that read the request's body (`POST /ca/revoke`).
  func respond(method: String, target: String, body: [UInt8]) async -> AdminResponse
}

extension AdminResponder {
  /// Routes that read no body answer as without one.
  package func respond(method: String, target: String, body: [UInt8]) async -> AdminResponse {
    await self.respond(method: method, target: target)
  }
}
