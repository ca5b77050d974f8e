import Foundation
import SDSAgentCore

/// What the admin endpoint answers: metrics, health, readiness, debug views (never key
/// material) and forced rotation.
struct AdminRoutes: Sendable {
  struct Response: Sendable {
    var status: Int
    var contentType: String
    var body: String
  }

  let cache: SecretCache
  let counters: AgentCounters
  let streams: StreamRegistry
  let metrics: PrometheusMetrics
  let identity: SPIFFEID
  let workloads: WorkloadRegistry
  let nextRotation: @Sendable () -> Date?
  let rotate: @Sendable () async throws -> Void

  func respond(method: String, target: String) async -> Response {
    let components = URLComponents(string: target)
    let path = components?.path ?? target
    let query = Dictionary(
      (components?.queryItems ?? []).map { ($0.name, $0.value ?? "") },
      uniquingKeysWith: { $1 }
    )
    switch (method, path) {
    case ("GET", "/metrics"):
      let text = self.metrics.render(openStreams: self.counters.openStreams, served: self.cache.current, now: Date())
      return Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: text)
    case ("GET", "/healthz"):
      return Response(status: 200, contentType: "text/plain", body: "ok\n")
    case ("GET", "/readyz"):
      let ready = self.cache.current.svid.map { $0.isValid(at: Date()) } ?? false
      return ready
        ? Response(status: 200, contentType: "text/plain", body: "ready\n")
        : Response(status: 503, contentType: "text/plain", body: "no valid certificate yet\n")
    case ("GET", "/debug/streams"):
      return self.json(self.streams.streams.map(Self.describe))
    case ("GET", "/debug/secrets"):
      return self.json(self.describeSecrets())
    case ("POST", "/rotate"):
      do {
        if let asked = query["identity"], asked != self.identity.description {
          guard let workload = try? SPIFFEID(parsing: asked), try await self.workloads.rotate(workload),
            let cache = self.workloads.cache(for: workload)
          else {
            let known = [self.identity] + self.workloads.workloadIdentities
            return Response(
              status: 404, contentType: "text/plain",
              body: "unknown identity \(asked); this agent serves \(known.map(\.description).joined(separator: ", "))\n"
            )
          }
          return self.json(["identity": asked, "serial": cache.current.svid?.leaf.serialHex ?? ""])
        }
        try await self.rotate()
        let serial = self.cache.current.svid?.leaf.serialHex ?? ""
        return self.json(["identity": self.identity.description, "serial": serial])
      } catch {
        return Response(status: 503, contentType: "text/plain", body: "rotation failed: \(error)\n")
      }
    case (_, "/metrics"), (_, "/healthz"), (_, "/readyz"), (_, "/debug/streams"), (_, "/debug/secrets"), (_, "/rotate"):
      return Response(status: 405, contentType: "text/plain", body: "method \(method) not allowed on \(path)\n")
    default:
      return Response(
        status: 404,
        contentType: "text/plain",
        body: "not found: \(path); try /metrics, /healthz, /readyz, /debug/streams, /debug/secrets or POST /rotate\n"
      )
    }
  }

  private func describeSecrets() -> [[String: Any]] {
    var secrets = self.describe(self.cache.current, nextRotation: self.nextRotation())
    for identity in self.workloads.workloadIdentities {
      if let cache = self.workloads.cache(for: identity) {
        secrets += self.describe(cache.current, nextRotation: nil)
      }
    }
    return secrets
  }

  private func describe(_ served: ServedSecrets, nextRotation: Date?) -> [[String: Any]] {
    var secrets: [[String: Any]] = []
    if let svid = served.svid {
      secrets.append([
        "name": SecretResource.tlsCertificate.name,
        "identity": svid.identity.description,
        "serial": svid.leaf.serialHex,
        "not_before": svid.notBefore.formatted(.iso8601),
        "not_after": svid.notAfter.formatted(.iso8601),
        "next_rotation": nextRotation?.formatted(.iso8601) ?? NSNull(),
        "chain_length": svid.chain.count,
        "version": served.svidRevision,
      ])
    }
    if let bundle = served.trustBundle {
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

  static func describe(_ stream: StreamRegistry.Stream) -> [String: Any] {
    [
      "id": stream.id,
      "node_id": stream.nodeID ?? NSNull(),
      "identity": stream.identity ?? NSNull(),
      "resources": stream.resources,
      "opened_at": stream.openedAt.formatted(.iso8601),
      "last_sent_version": stream.lastSentVersion ?? NSNull(),
      "last_acked_version": stream.lastAckedVersion ?? NSNull(),
      "last_nacked_nonce": stream.lastNackedNonce ?? NSNull(),
      "last_nack_message": stream.lastNackMessage ?? NSNull(),
    ]
  }

  private func json(_ object: Any) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return Response(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
  }
}
