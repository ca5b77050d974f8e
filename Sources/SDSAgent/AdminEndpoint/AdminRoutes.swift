import Foundation
import SDSAgentCore

/// What the admin endpoint answers: metrics, health, readiness, debug views (never key
/// material) and forced rotation.
struct AdminRoutes: AdminResponder {
  typealias Response = AdminResponse

  let identities: IdentityTable
  let counters: AgentCounters
  let streams: StreamRegistry
  let metrics: PrometheusMetrics
  let trust: TrustRoutes
  /// On-demand server certificates, if configured.
  var onDemand: OnDemandCertificates<ContinuousClock>? = nil
  /// Revocation by the embedded CA; without it, `/ca/revoke` and `/ca/crl` say why not.
  var revocation: RevocationRoutes? = nil
  /// Where certificates come from, for `/status`.
  let certificateAuthority: String

  func respond(method: String, target: String) async -> Response {
    await self.respond(method: method, target: target, body: [])
  }

  func respond(method: String, target: String, body: [UInt8]) async -> Response {
    let components = URLComponents(string: target)
    let path = components?.path ?? target
    let query = Dictionary(
      (components?.queryItems ?? []).map { ($0.name, $0.value ?? "") },
      uniquingKeysWith: { $1 }
    )
    switch (method, path) {
    case ("GET", "/metrics"):
      let text = self.metrics.render(
        counters: self.counters, identities: self.identities.snapshot(), trustBundleRoots: self.trust.rootCounts,
        revocationListEntries: self.trust.revocationListEntries, now: Date())
      return Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: text)
    case ("GET", "/healthz"):
      return Response(status: 200, contentType: "text/plain", body: "ok\n")
    case ("GET", "/readyz"):
      let ready = self.identities.pinnedCache.current.svid?.isValid(at: Date()) ?? false
      return ready
        ? Response(status: 200, contentType: "text/plain", body: "ready\n")
        : Response(status: 503, contentType: "text/plain", body: "no valid certificate yet\n")
    case ("GET", "/debug/streams"):
      return .json(self.streams.streams.map(AdminAPI.Stream.init))
    case ("GET", "/debug/secrets"):
      return .json(self.secrets())
    case ("GET", "/status"):
      let status = NodeStatus(
        table: self.identities, streams: self.streams, certificateAuthority: self.certificateAuthority, now: Date())
      return .json(status, encoder: NodeStatus.encoder)
    case ("POST", "/rotate"):
      return await self.rotate(asked: query["identity"])
    case ("GET", "/debug/trust"):
      return .json(self.trust.describe())
    case ("POST", "/ca/rotate-root"):
      return self.trust.rotateRoot(overlap: query["overlap"])
    case ("POST", "/ca/revoke"):
      return await self.revocation?.revoke(body: body) ?? .text(409, "cannot revoke: no embedded CA\n")
    case ("GET", "/ca/crl"):
      return self.revocation?.crl() ?? .text(409, "no revocation list: no embedded CA\n")
    case (_, "/metrics"), (_, "/healthz"), (_, "/readyz"), (_, "/debug/streams"), (_, "/debug/secrets"), (_, "/status"),
      (_, "/rotate"), (_, "/debug/trust"), (_, "/ca/rotate-root"), (_, "/ca/revoke"), (_, "/ca/crl"):
      return Response(
        status: 405, contentType: "text/plain", body: "method \(BoundedText(method)) not allowed on \(path)\n")
    default:
      return Response(
        status: 404,
        contentType: "text/plain",
        body:
          "not found: \(BoundedText(path)); try /metrics, /healthz, /readyz, /status, /debug/streams, /debug/secrets, /debug/trust, "
          + "/ca/crl, POST /rotate, POST /ca/rotate-root or POST /ca/revoke\n"
      )
    }
  }

  /// Forces a rotation of the asked identity, the agent's own by default.
  private func rotate(asked: String?) async -> Response {
    let identity = asked.map { try? SPIFFEID(parsing: $0) } ?? self.identities.pinnedIdentity
    do {
      if let identity, try await self.identities.rotate(identity), let cache = self.identities.cache(for: identity) {
        return .json(AdminAPI.Rotated(identity: identity.description, serial: cache.current.svid?.leaf.serialHex ?? ""))
      }
    } catch {
      return Response(status: 503, contentType: "text/plain", body: "rotation failed: \(error)\n")
    }
    let known = self.identities.identities
    let listed = known.prefix(Self.listedIdentities).map(\.description).joined(separator: ", ")
    let more = known.count > Self.listedIdentities ? " and \(known.count - Self.listedIdentities) more" : ""
    return Response(
      status: 404, contentType: "text/plain",
      body: "unknown identity \(BoundedText(asked ?? "")); this agent serves \(listed)\(more)\n")
  }

  /// How many identities a 404 lists.
  static let listedIdentities = 20

  /// `GET /debug/secrets`: each identity's certificate, the own identity's bundle and any
  /// other identity's that differs, its JWT-SVIDs held by SDS streams, then the on-demand
  /// certificates by name.
  private func secrets() -> [AdminAPI.Secret] {
    let rows = self.identities.snapshot()
    let pinnedBundle = rows.first?.served.trustBundle
    let onDemand = (self.onDemand?.entries ?? [:]).sorted { $0.key.name < $1.key.name }.map { name, entry in
      AdminAPI.Secret.onDemand(
        .init(
          name: name.name, holders: entry.holders, serial: entry.certificate?.serial,
          notAfter: entry.certificate?.notAfter, idleSince: entry.idleSince,
          lastError: entry.lastError.map(BoundedText.escaped)))
    }
    return rows.flatMap { row in
      self.secrets(of: row, withBundle: row.isPinned || row.served.trustBundle != pinnedBundle)
    } + onDemand + Self.sessionTicketKeys(rows.first?.served)
  }

  /// An identity's certificate (or its phase, without one) and, if asked, its trust bundle.
  private func secrets(of row: IdentitySnapshot, withBundle: Bool) -> [AdminAPI.Secret] {
    let served = row.served
    var certificate = AdminAPI.Secret.Certificate(
      name: SecretResource.tlsCertificate.name, identity: row.identity.description, phase: row.phase.name,
      streams: row.streams, nextRotation: row.renewAt, version: served.svidRevision)
    if case .failing(let failure) = row.phase {
      certificate.lastError = BoundedText.escaped("\(failure.code.rawValue): \(failure.message)")
      certificate.retryAt = row.retryAt
    }
    if let svid = served.svid {
      certificate.serial = svid.leaf.serialHex
      certificate.notBefore = svid.notBefore
      certificate.notAfter = svid.notAfter
      certificate.chainLength = svid.chain.count
    }
    var secrets = [AdminAPI.Secret.certificate(certificate)]
    if withBundle, let bundle = served.trustBundle {
      secrets.append(
        .validationContext(
          .init(
            name: SecretResource.validationContext.name,
            roots: bundle.roots.map {
              AdminAPI.Root(subject: "\($0.subject)", serial: $0.serialHex, notAfter: $0.notValidAfter)
            },
            version: served.trustBundleRevision)))
    }
    return secrets
      + served.jwtSVIDs.sorted { $0.key < $1.key }.map { audience, token in
        .jwtSVID(
          .init(
            name: audience.secretName, identity: row.identity.description, issuedAt: token.svid.issuedAt,
            expiresAt: token.svid.expiresAt, version: token.revision))
      }
  }
}
