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
  /// Where certificates come from, for `/status`.
  let certificateAuthority: String

  func respond(method: String, target: String) async -> Response {
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
        now: Date())
      return Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: text)
    case ("GET", "/healthz"):
      return Response(status: 200, contentType: "text/plain", body: "ok\n")
    case ("GET", "/readyz"):
      let ready = self.identities.pinnedCache.current.svid?.isValid(at: Date()) ?? false
      return ready
        ? Response(status: 200, contentType: "text/plain", body: "ready\n")
        : Response(status: 503, contentType: "text/plain", body: "no valid certificate yet\n")
    case ("GET", "/debug/streams"):
      return self.json(self.streams.streams.map(Self.describe))
    case ("GET", "/debug/secrets"):
      return self.json(self.describeSecrets())
    case ("GET", "/status"):
      let status = NodeStatus(
        table: self.identities, streams: self.streams, certificateAuthority: self.certificateAuthority, now: Date())
      let data = (try? NodeStatus.encoder.encode(status)) ?? Data()
      return Response(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
    case ("POST", "/rotate"):
      return await self.rotate(asked: query["identity"])
    case ("GET", "/debug/trust"):
      return .json(self.trust.describe())
    case ("POST", "/ca/rotate-root"):
      return self.trust.rotateRoot(overlap: query["overlap"])
    case (_, "/metrics"), (_, "/healthz"), (_, "/readyz"), (_, "/debug/streams"), (_, "/debug/secrets"), (_, "/status"),
      (_, "/rotate"), (_, "/debug/trust"), (_, "/ca/rotate-root"):
      return Response(
        status: 405, contentType: "text/plain", body: "method \(BoundedText(method)) not allowed on \(path)\n")
    default:
      return Response(
        status: 404,
        contentType: "text/plain",
        body:
          "not found: \(BoundedText(path)); try /metrics, /healthz, /readyz, /status, /debug/streams, /debug/secrets, /debug/trust, "
          + "POST /rotate or POST /ca/rotate-root\n"
      )
    }
  }

  /// Forces a rotation of the asked identity, the agent's own by default.
  private func rotate(asked: String?) async -> Response {
    let identity = asked.map { try? SPIFFEID(parsing: $0) } ?? self.identities.pinnedIdentity
    do {
      if let identity, try await self.identities.rotate(identity), let cache = self.identities.cache(for: identity) {
        return self.json(["identity": identity.description, "serial": cache.current.svid?.leaf.serialHex ?? ""])
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

  private func describeSecrets() -> [[String: Any]] {
    let rows = self.identities.snapshot()
    let pinnedBundle = rows.first?.served.trustBundle
    let onDemand = (self.onDemand?.entries ?? [:]).sorted { $0.key.name < $1.key.name }.map { name, entry in
      [
        "name": name.name, "kind": "on_demand", "holders": entry.holders,
        "serial": entry.certificate?.serial ?? NSNull(),
        "not_after": entry.certificate?.notAfter.formatted(.iso8601) ?? NSNull(),
        "idle_since": entry.idleSince?.formatted(.iso8601) ?? NSNull(),
        "last_error": entry.lastError.map(BoundedText.escaped) ?? NSNull(),
      ] as [String: Any]
    }
    return rows.flatMap { row in
      self.describe(row, withBundle: row.isPinned || row.served.trustBundle != pinnedBundle)
    } + onDemand
  }

  /// An identity's certificate (or its phase, without one) and, if asked, its trust bundle.
  private func describe(_ row: IdentitySnapshot, withBundle: Bool) -> [[String: Any]] {
    let served = row.served
    var certificate: [String: Any] = [
      "name": SecretResource.tlsCertificate.name,
      "identity": row.identity.description,
      "phase": row.phase.name,
      "streams": row.streams,
      "next_rotation": row.renewAt?.formatted(.iso8601) ?? NSNull(),
      "version": served.svidRevision,
    ]
    if case .failing(let failure) = row.phase {
      certificate["last_error"] = BoundedText.escaped("\(failure.code.rawValue): \(failure.message)")
      certificate["retry_at"] = row.retryAt?.formatted(.iso8601) ?? NSNull()
    }
    if let svid = served.svid {
      certificate["serial"] = svid.leaf.serialHex
      certificate["not_before"] = svid.notBefore.formatted(.iso8601)
      certificate["not_after"] = svid.notAfter.formatted(.iso8601)
      certificate["chain_length"] = svid.chain.count
    }
    var secrets = [certificate]
    if withBundle, let bundle = served.trustBundle {
      secrets.append([
        "name": SecretResource.validationContext.name,
        "roots": bundle.roots.map {
          ["subject": "\($0.subject)", "serial": $0.serialHex, "not_after": $0.notValidAfter.formatted(.iso8601)]
        },
        "version": served.trustBundleRevision,
      ])
    }
    return secrets
  }

  /// A stream as `/debug/streams` lists it; what the client sent is shown escaped.
  static func describe(_ stream: StreamRegistry.Stream) -> [String: Any] {
    let escaped: (String?) -> Any = { $0.map(BoundedText.escaped) ?? NSNull() }
    return [
      "id": stream.id,
      "node_id": escaped(stream.nodeID),
      "identity": escaped(stream.identity),
      "resources": stream.resources.map(BoundedText.escaped),
      "opened_at": stream.openedAt.formatted(.iso8601),
      "last_sent_version": escaped(stream.lastSentVersion),
      "last_acked_version": escaped(stream.lastAckedVersion),
      "last_nacked_nonce": escaped(stream.lastNackedNonce),
      "last_nack_message": escaped(stream.lastNackMessage),
    ]
  }

  private func json(_ object: Any) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return Response(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
  }
}
