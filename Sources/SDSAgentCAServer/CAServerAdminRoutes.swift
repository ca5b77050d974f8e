import Foundation
import SDSAgent
import SDSAgentCore

/// What `ca serve`'s admin endpoint answers: health, its trust and its root rotations, with the
/// agent's JSON shapes (`TrustRoutes`).
package struct CAServerAdminRoutes: AdminResponder {
  let trust: TrustRoutes

  package init(trust: TrustRoutes) {
    self.trust = trust
  }

  package func respond(method: String, target: String) async -> AdminResponse {
    let components = URLComponents(string: target)
    let path = components?.path ?? target
    let overlap = components?.queryItems?.last { $0.name == "overlap" }.map { $0.value ?? "" }
    switch (method, path) {
    case ("GET", "/healthz"):
      return .text(200, "ok\n")
    case ("GET", "/debug/trust"):
      return .json(self.trust.describe())
    case ("POST", "/ca/rotate-root"):
      return self.trust.rotateRoot(overlap: overlap)
    case (_, "/healthz"), (_, "/debug/trust"), (_, "/ca/rotate-root"):
      return .text(405, "method \(BoundedText(method)) not allowed on \(path)\n")
    default:
      return .text(404, "not found: \(BoundedText(path)); try /healthz, /debug/trust or POST /ca/rotate-root\n")
    }
  }
}
