import Foundation
import SDSAgent
import SDSAgentCore

/// What `ca serve`'s admin endpoint answers: health, its trust, its root rotations and its
/// revocations, with the agent's JSON shapes (`TrustRoutes`, `RevocationRoutes`).
package struct CAServerAdminRoutes: AdminResponder {
  let trust: TrustRoutes
  let revocation: RevocationRoutes?
  /// The trust bundle of the moment, for `GET /ca/roots`.
  let roots: (@Sendable () -> TrustBundle)?

  package init(
    trust: TrustRoutes, revocation: RevocationRoutes? = nil, roots: (@Sendable () -> TrustBundle)? = nil
  ) {
    self.trust = trust
    self.revocation = revocation
    self.roots = roots
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
    case ("GET", "/ca/roots") where self.roots != nil:
      return Self.pem(self.roots?())
    case ("GET", "/ca/crl") where self.revocation != nil:
      return self.revocation?.crl() ?? .text(500, "no revocation\n")
    case (_, "/healthz"), (_, "/debug/trust"), (_, "/ca/rotate-root"):
      return .text(405, "method \(BoundedText(method)) not allowed on \(path)\n")
    default:
      return .text(404, "not found: \(BoundedText(path)); try /healthz, /debug/trust or POST /ca/rotate-root\n")
    }
  }

  /// The bundle as PEM, as `<state-dir>/ca-cert.pem` holds it.
  static func pem(_ bundle: TrustBundle?) -> AdminResponse {
    guard let bundle, let pem = try? bundle.pemString() else { return .text(500, "no trust bundle\n") }
    return .text(200, pem)
  }
}
