import X509

/// Where the revocation service serves its lists and who it re-issues after a revocation: the
/// agent's identity table, or `ca serve`, which only answers its lists on its admin endpoint.
package protocol RevocationHost: Sendable {
  /// Serves `lists` from now on, one per root that signs one.
  func installRevocationLists(_ lists: [CertificateRevocationList]) throws
  /// Serves `lists` from now on, one per CA that signs leaves; `intermediates` are those between
  /// the leaves and the roots (the one that signs first), empty when a root signs them.
  func installRevocationLists(_ lists: [CertificateRevocationList], intermediates: [Certificate]) throws
  /// The lists served now.
  var servedRevocationLists: [CertificateRevocationList] { get }
  /// Issues `identity` a new certificate with a new key now; false when the host does not hold it.
  func reissue(_ identity: SPIFFEID) async throws -> Bool
}

extension IdentityTable: RevocationHost {
  package func reissue(_ identity: SPIFFEID) async throws -> Bool {
    try await self.rotate(identity)
  }
}

extension RevocationHost {
  package func installRevocationLists(_ lists: [CertificateRevocationList], intermediates: [Certificate]) throws {
    try self.installRevocationLists(lists)
  }
}
