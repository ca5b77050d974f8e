/// Who takes a live setting's new value when the agent reloads: each live setting names its
/// appliers, and the agent registers one `Reconfigurable` under each name (a test holds the two
/// together). Reload asks every applier to check the new configuration, in the order of these
/// cases, and only then has them apply it, in the same order.
package enum SettingApplier: String, Sendable, CaseIterable {
  /// The process's log level.
  case logging
  /// How long both roots are trusted in a root rotation of the embedded CA.
  case rootRotation = "root-rotation"
  /// The other trust domains' bundles watched.
  case federation
  /// The secrets served from files, and where file names may point.
  case fileSecrets = "file-secrets"
  /// The roots file of an Istio-compatible CA, re-read on every reload. No setting names it: its
  /// path needs a restart, its content is what changes.
  case caRoots = "ca-roots"
  /// The operator's CA files, read before anything is applied: files that cannot be used refuse
  /// the whole reload.
  case operatorCA = "operator-ca"
  /// Who callers are and how often they may ask: workload rules, JWT keys, caller rates.
  case admission
  /// How every identity's certificates are issued, and how long an unused identity is kept.
  case identities
  /// How long an on-demand certificate no stream holds is kept.
  case onDemand = "on-demand"
}
