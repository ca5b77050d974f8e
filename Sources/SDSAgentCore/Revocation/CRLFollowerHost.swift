import X509

/// What the CRL follower needs of the agent: who may sign a CRL, the certificates it serves (to
/// find the distribution point and the serials to check), where the lists go, and a renewal.
package protocol CRLFollowerHost: Sendable {
  /// The certificates that may sign a followed CRL: the own trust bundle's roots and the own
  /// certificate's intermediates.
  var crlIssuers: [Certificate] { get }
  /// The leaf each identity serves now, the agent's own first.
  var servedLeaves: [(identity: SPIFFEID, leaf: Certificate)] { get }
  /// Serves `lists` in every own validation context from now on, when each own root has one.
  func installRevocationLists(_ lists: [CertificateRevocationList]) throws
  /// The lists served now: none while a root of the own bundle has no list.
  var servedRevocationLists: [CertificateRevocationList] { get }
  /// Issues `identity` a new certificate with a new key now; false when it is not held.
  func renew(_ identity: SPIFFEID) async throws -> Bool
  /// Yields when the own certificate or the trust changes.
  func changes() -> AsyncStream<Void>
}

extension IdentityTable: CRLFollowerHost {
  package var crlIssuers: [Certificate] {
    let current = self.pinnedCache.current
    let roots = self.installedTrustBundle?.roots ?? current.trust?.own.roots ?? []
    return roots + (current.svid?.chain.dropFirst() ?? [])
  }

  package var servedLeaves: [(identity: SPIFFEID, leaf: Certificate)] {
    self.identities.compactMap { identity in
      self.cache(for: identity)?.current.svid.map { (identity: identity, leaf: $0.leaf) }
    }
  }

  package func renew(_ identity: SPIFFEID) async throws -> Bool {
    try await self.rotate(identity)
  }

  package func changes() -> AsyncStream<Void> {
    self.pinnedCache.changes()
  }
}
