/// What an admin endpoint answers: the agent's routes (`AdminRoutes`) or `ca serve`'s
/// (`CAServerAdminRoutes`).
package protocol AdminResponder: Sendable {
  /// The answer to `method` on `target` (a path with its query).
  func respond(method: String, target: String) async -> AdminResponse
}
