import Foundation
import Logging

/// The trust bundles the trust lifecycle installed for every identity, as the inputs the node's
/// trust row is built from.
struct TrustInstallation: Sendable {
  /// The own trust domain's bundle; `nil` serves the bundle each issuance came with.
  var own: TrustBundle?
  var federated: [TrustDomainName: TrustBundle] = [:]
  /// Federated domains removed while the agent runs.
  var removed: Set<TrustDomainName> = []
  /// The own roots' revocation lists; served only with an installed own bundle.
  var revocationLists: [CertificateRevocationList] = []
  /// When the CA signs through an intermediate: the intermediates and the operator's lists for them.
  var revocationChain = RevocationChain()
}

extension IdentityTable {
  /// The own trust domain's bundle installed for every identity, if the trust lifecycle decides it.
  package var installedTrustBundle: TrustBundle? { self.trust.withLock { $0.own } }

  /// The federated bundles served, by trust domain.
  package var federatedBundles: [TrustDomainName: TrustBundle] { self.trust.withLock { $0.federated } }

  /// The own trust domain, whose bundle is `ROOTCA`.
  package var ownTrustDomain: TrustDomainName { TrustDomainName(of: self.pinnedIdentity) }

  /// Serves `bundle` as the own trust domain's to every identity from now on, also to identities
  /// issued later, and pushes it to every open stream whose bundle it changes: one row, one
  /// revision.
  package func installTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      installation.own = bundle
      try self.pushTrust(installation)
    }
  }

  /// Serves `lists` as the own roots' revocation lists from now on (with the own bundle, and only
  /// when every root of it has one), pushed like a new bundle.
  package func installRevocationLists(_ lists: [CertificateRevocationList]) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      installation.revocationLists = lists
      try self.pushTrust(installation)
    }
  }

  /// The revocation lists served now, one per own root, or none.
  package var servedRevocationLists: [CertificateRevocationList] {
    self.node.read { $0.trust.trust?.revocationLists ?? [] }
  }

  /// Serves `bundles` as the federated trust domains' from now on. A domain that was served and
  /// is not in `bundles` is pushed as trusting nothing.
  package func installFederatedBundles(_ bundles: [TrustDomainName: TrustBundle]) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      let gone = Set(installation.federated.keys).subtracting(bundles.keys)
      installation.removed = installation.removed.union(gone).subtracting(bundles.keys)
      installation.federated = bundles
      try self.pushTrust(installation)
    }
  }

  /// Builds the node's trust row from `installation`. Until an own bundle is installed, each
  /// identity serves the one its issuance came with, so each (encoding each distinct one once)
  /// gets the federated bundles; identities without a bundle yet get theirs with their first
  /// issuance.
  func pushTrust(_ installation: TrustInstallation) throws(CertificateAuthorityError) {
    if let own = installation.own {
      self.node.updateTrust(
        try ServedTrust(
          ownDomain: self.ownTrustDomain, own: own, federated: installation.federated, removed: installation.removed,
          revocationLists: installation.revocationLists, revocationChain: installation.revocationChain))
      return
    }
    var built: [ServedTrust] = []
    for identity in self.identities {
      guard let cache = self.cache(for: identity), let own = cache.issuedTrust?.own else { continue }
      let trust: ServedTrust
      if let existing = built.first(where: { $0.own == own }) {
        trust = existing
      } else {
        trust = try ServedTrust(
          ownDomain: self.ownTrustDomain, own: own, federated: installation.federated, removed: installation.removed)
        built.append(trust)
      }
      cache.updateTrust(trust)
    }
  }

  /// Serves a new issuance in `cache`. Under the trust lock, so that an issuance never puts back an
  /// older bundle: with an own bundle installed, the node's trust row is served and the issuance's
  /// bundle is not.
  func serve(_ issued: IssuedSVID, in cache: SecretCache) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      guard installation.own == nil else {
        try cache.update(with: issued.certifiedKey, trust: nil)
        return
      }
      let own = issued.trustBundle
      let trust: ServedTrust
      if let current = cache.issuedTrust, current.own == own, current.federated == installation.federated,
        current.removed == installation.removed
      {
        trust = current
      } else {
        trust = try ServedTrust(
          ownDomain: self.ownTrustDomain, own: own, federated: installation.federated, removed: installation.removed)
      }
      try cache.update(with: issued.certifiedKey, trust: trust)
    }
  }

  /// Serves these file secrets to every identity from now on: one shared row, one revision.
  package func installFiles(_ contents: [String: FileSecretContent]) {
    self.node.updateFiles(contents)
  }

  /// Serves these on-demand server certificates to every identity from now on: one shared row,
  /// one revision.
  package func installOnDemand(_ certificates: [DNSName: ServerCertificate]) {
    self.node.updateOnDemand(certificates)
  }

  /// Issues a new certificate for every identity at once and waits for all of them; returns the
  /// identities whose issuance failed, with the error.
  package func reissueAll() async -> [(SPIFFEID, CertificateAuthorityError)] {
    await withTaskGroup(of: (SPIFFEID, CertificateAuthorityError)?.self) { group in
      for identity in self.identities {
        group.addTask {
          if case .failure(let error) = await self.issue(identity, retries: true, joinInFlight: false) {
            return (identity, error)
          }
          return nil
        }
      }
      var failures: [(SPIFFEID, CertificateAuthorityError)] = []
      for await failure in group {
        if let failure { failures.append(failure) }
      }
      return failures
    }
  }
}
