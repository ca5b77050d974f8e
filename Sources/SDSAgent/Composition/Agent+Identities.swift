import Foundation
import SDSAgentCore

/// The identities served and the supervisor that keeps each one's certificate fresh.
extension Agent {
  /// The table of identities, the agent's own pinned.
  static func identityTable(_ context: AgentContext) -> IdentityTable {
    IdentityTable(
      pinned: context.configuration.identity,
      template: Self.identitySettings(context.configuration),
      idleTimeout: context.configuration.nodeAgent.limits.idleTimeout,
      now: context.now()
    )
  }

  /// The supervisor of every identity's certificate, asking `issuer`.
  static func supervisor(
    _ context: AgentContext, table: IdentityTable, issuer: any CertificateAuthority
  ) -> IdentitySupervisor<ContinuousClock> {
    IdentitySupervisor(
      table: table, authority: issuer, counters: context.counters, clock: context.clock, now: context.now,
      logger: context.logger)
  }

  /// How every identity's certificates are issued.
  static func identitySettings(_ configuration: AgentConfiguration) -> IdentitySettings {
    IdentitySettings(
      keyType: configuration.keyType,
      ttl: configuration.certificateTTL,
      schedule: configuration.rotation,
      // Retry at least ten times within a lifetime, so a CA that comes back is used soon.
      backoff: Backoff(maximum: max(.seconds(2), min(.seconds(60), configuration.certificateTTL / 10)))
    )
  }
}
