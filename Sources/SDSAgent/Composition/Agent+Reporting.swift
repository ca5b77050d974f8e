import Foundation
import SDSAgentCore

/// What reports on the agent: the admin endpoint and systemd.
extension Agent {
  /// The admin endpoint, when `admin` is set.
  static func adminServer(
    _ context: AgentContext, metrics: PrometheusMetrics, identities: IdentityTable, streams: StreamRegistry,
    ca: CAServices, federation: FederatedBundleWatcher, onDemand: OnDemandCertificates<ContinuousClock>?,
    listening: Milestone
  ) -> AdminServer? {
    let configuration = context.configuration
    guard let admin = configuration.admin else { return nil }
    var routes = AdminRoutes(
      identities: identities, counters: context.counters, streams: streams, metrics: metrics,
      trust: TrustRoutes(
        rotation: ca.rootRotation, identities: identities, federation: federation,
        notRotatable: ca.authority.notRotatable),
      certificateAuthority: configuration.istioCA.map { "the Istio-compatible CA at \($0.host):\($0.port)" }
        ?? "the local CA")
    routes.onDemand = onDemand
    routes.revocation = RevocationRoutes(
      service: ca.revocation, host: identities,
      notRevocable: ca.isRemote
        ? "this agent fetches certificates from a remote CA; revoke them there (sds-agent ca revoke against ca serve)"
        : nil)
    return AdminServer(address: admin, routes: routes, listening: listening, logger: context.logger)
  }

  static func systemd(
    _ context: AgentContext, notifier: SystemdNotifier, socketPath: String, identities: IdentityTable,
    environment: [String: String]
  ) -> SystemdService {
    SystemdService(
      notifier: notifier,
      watchdogInterval: SystemdNotifier.watchdogInterval(environment: environment),
      socketPath: socketPath,
      identities: identities,
      counters: context.counters,
      clock: context.clock,
      logger: context.logger
    )
  }
}
