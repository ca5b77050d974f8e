import Foundation
import SDSAgent
import SDSAgentCore

/// What `ca serve`'s admin endpoint answers: health, its trust, its root rotations and its
/// revocations, with the agent's JSON shapes (`TrustRoutes`, `RevocationRoutes`).
package struct CAServerAdminRoutes: AdminResponder {
  let trust: TrustRoutes
  let revocation: RevocationRoutes?

  package init(trust: TrustRoutes, revocation: RevocationRoutes? = nil) {
    self.trust = trust
    self.revocation = revocation
  }

  package func respond(method: String, target: String) async -> AdminResponse {
    await self.respond(method: method, target: target, body: [])
  }

  package func respond(method: String, target: String, body: [UInt8]) async -> AdminResponse {
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
    case ("POST", "/ca/revoke") where self.revocation != nil:
      return await self.revocation?.revoke(body: body) ?? .text(500, "no revocation\n")
    case ("GET", "/ca/crl") where self.revocation != nil:
      return self.revocation?.crl() ?? .text(500, "no revocation\n")
    case (_, "/healthz"), (_, "/debug/trust"), (_, "/ca/rotate-root"):
      return .text(405, "method \(BoundedText(method)) not allowed on \(path)\n")
    default:
      return .text(404, "not found: \(BoundedText(path)); try /healthz, /debug/trust or POST /ca/rotate-root\n")
    }
  }
}
