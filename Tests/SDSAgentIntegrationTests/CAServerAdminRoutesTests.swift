import Foundation
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import Testing
import X509

/// `ca serve`'s admin routes, driven directly: the same `AdminAPI.Trust` document as the
/// agent's, and a refusal to rotate a root that is not its to rotate.
@Suite struct CAServerAdminRoutesTests {
  let routes: CAServerAdminRoutes
  let root: CAMaterial

  init() throws {
    self.root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.root))
    self.routes = CAServerAdminRoutes(
      trust: TrustRoutes(rotation: nil, ca: ca, trustDomain: "cluster.local", notRotatable: "operator CA files"))
  }

  @Test func trustIsTheAgentsDocumentWithTheCAsRoot() async throws {
    let response = await self.routes.respond(method: "GET", target: "/debug/trust")
    #expect(response.status == 200 && response.contentType == "application/json")
    let trust = try AdminAPI.decoder.decode(AdminAPI.Trust.self, from: Data(response.body.utf8))
    #expect(trust.trustDomain == "cluster.local" && trust.phase == .idle && !trust.rotatable)
    #expect(trust.roots.map(\.serial) == [self.root.certificate.serialHex] && trust.roots.map(\.phase) == [.trusted])
    #expect(trust.notRotatable == "operator CA files" && trust.rotation == nil && trust.federated.isEmpty)
    #expect(response.body.contains(#""not_rotatable" : "operator CA files""#))
    #expect(!response.body.contains(#""rotation""#))
  }

  @Test func aRootItCannotRotateIsRefusedSayingWhy() async {
    let response = await self.routes.respond(method: "POST", target: "/ca/rotate-root?overlap=1h")
    #expect(response.status == 409)
    #expect(response.body == "cannot rotate the root: operator CA files\n")
  }

  @Test(arguments: [
    ("GET", "/healthz", 200, "ok\n"),
    ("GET", "/ca/rotate-root", 405, "method GET not allowed on /ca/rotate-root\n"),
    ("POST", "/debug/trust", 405, "method POST not allowed on /debug/trust\n"),
    ("GET", "/status", 404, "not found: /status; try /healthz, /debug/trust or POST /ca/rotate-root\n"),
  ])
  func otherRoutes(method: String, target: String, status: Int, body: String) async {
    let response = await self.routes.respond(method: method, target: target)
    #expect(response.status == status && response.body == body)
  }
}
