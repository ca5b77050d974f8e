/// Trust bundles as one row of served secrets, with the revision of each part a resource can
/// depend on: the own trust domain's bundle and the federated ones.
struct TrustRow: Sendable {
  var trust: ServedTrust?
  /// Changes with the own trust domain's bundle.
  var bundleRevision: UInt64 = 0
  /// Changes with the federated bundles.
  var federationRevision: UInt64 = 0

  /// Serves `trust` under `revision`, moving only the revisions of what changed.
  mutating func set(_ trust: ServedTrust, revision: UInt64) {
    let old = self.trust
    guard old != trust else { return }
    self.trust = trust
    if old?.own != trust.own || old?.ownDomain != trust.ownDomain || old?.revocationLists != trust.revocationLists {
      self.bundleRevision = revision
    }
    if old?.federated != trust.federated || old?.removed != trust.removed {
      self.federationRevision = revision
    }
  }
}
