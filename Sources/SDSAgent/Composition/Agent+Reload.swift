import Foundation
import SDSAgentCore
import UnixSignals

/// Reload: the services that take a new configuration, each under the name live settings give
/// it, and the service that re-reads the configuration on SIGHUP.
extension Agent {
  static func reloadAppliers(
    _ context: AgentContext, logging: AgentLogging?, ca: CAServices, federation: FederatedBundleWatcher,
    files: FileSecretWatcher, admission: CallerAdmission, identities: IdentityTable,
    onDemand: OnDemandCertificates<ContinuousClock>?
  ) -> ReloadAppliers {
    let running = context.configuration
    return ReloadAppliers(registered: [
      .logging: logging,
      .rootRotation: ca.rootRotation,
      .federation: federation,
      .fileSecrets: FileSecretsReload(files: files, running: running),
      .caRoots: ca.caRoots,
      .operatorCA: OperatorCAReload(replacement: ca.operatorCA, running: running, watcher: ca.operatorCAFiles),
      .admission: AdmissionReload(admission: admission, running: running, remoteCA: ca.isRemote),
      .identities: IdentitiesReload(identities: identities, logger: context.logger),
      .onDemand: onDemand,
    ])
  }

  /// Re-reads the configuration on SIGHUP, with `loader`; without one there is no reload.
  static func reloadService(
    _ context: AgentContext, loader: ConfigurationLoader?, appliers: ReloadAppliers, notifier: SystemdNotifier
  ) async -> ReloadService? {
    guard let loader else { return nil }
    return ReloadService(
      loader: loader, current: context.configuration, signals: await UnixSignalsSequence(trapping: .sighup),
      appliers: appliers, notifier: notifier, logger: context.logger)
  }
}
