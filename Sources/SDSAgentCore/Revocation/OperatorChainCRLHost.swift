import X509

/// Where the CRL follower puts the operator's lists above an intermediate that signs (the
/// `--ca-root-crl` file): each is signed by an own root or by an intermediate above the one that
/// signs leaves, goes inside the own bundle of the SPIFFE validator beside the agent's own list
/// for the intermediate, and lists no certificate the agent serves (they name CAs, not leaves).
package struct OperatorChainCRLHost: CRLFollowerHost {
  private let table: IdentityTable
  private let ca: EmbeddedCA

  package init(table: IdentityTable, ca: EmbeddedCA) {
    self.table = table
    self.ca = ca
  }

  package var crlIssuers: [Certificate] {
    (self.table.installedTrustBundle?.roots ?? []) + self.ca.roots.signing.intermediates
  }

  /// None: the follower then has no distribution point to fetch and no leaf to renew.
  package var servedLeaves: [(identity: SPIFFEID, leaf: Certificate)] { [] }

  package func installRevocationLists(_ lists: [CertificateRevocationList]) throws {
    try self.table.installChainRevocationLists(lists)
  }

  package var servedRevocationLists: [CertificateRevocationList] { self.table.installedChainRevocationLists }

  package func renew(_ identity: SPIFFEID) async throws -> Bool { false }

  package func changes() -> AsyncStream<Void> { self.table.pinnedCache.changes() }
}
