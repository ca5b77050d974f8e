import Foundation
import SDSAgentCore

/// The node-wide secrets: on-demand server certificates, secrets from files and other trust
/// domains' bundles.
extension Agent {
  /// On-demand certificates, when names are allowed and the embedded CA mints them.
  static func onDemand(
    _ context: AgentContext, authority: Authority, table: IdentityTable
  ) -> OnDemandCertificates<ContinuousClock>? {
    guard let settings = context.configuration.onDemand, let ca = authority.embedded else { return nil }
    return OnDemandCertificates(
      settings: settings, ca: ca, table: table, counters: context.counters, clock: context.clock,
      now: context.now, logger: context.logger)
  }

  static func fileSecrets(_ context: AgentContext, table: IdentityTable) -> FileSecretWatcher {
    let configuration = context.configuration
    return FileSecretWatcher(
      sources: configuration.fileSecrets, policy: configuration.onTheFlyFiles, keyMaterial: configuration.keyMaterial,
      table: table, counters: context.counters, watching: context.fileWatch, clock: context.clock,
      logger: context.logger)
  }

  /// Always built: a reload may add trust bundles to watch.
  static func federation(_ context: AgentContext, table: IdentityTable) throws -> FederatedBundleWatcher {
    try FederatedBundleWatcher(
      sources: context.configuration.federatedBundles, table: table, counters: context.counters,
      watching: context.fileWatch, clock: context.clock, logger: context.logger)
  }
}
