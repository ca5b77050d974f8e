import X509

extension IdentityTable {
  /// Serves `lists` as the lists of the CAs that sign leaves, as `installRevocationLists(_:)`;
  /// `intermediates` are those between the leaves and the roots (the one that signs first), empty
  /// when a root signs them.
  package func installRevocationLists(
    _ lists: [CertificateRevocationList], intermediates: [Certificate]
  ) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      installation.revocationLists = lists
      installation.revocationChain.intermediates = intermediates
      try self.pushTrust(installation)
    }
  }

  /// Serves `lists` (the operator's, for the intermediates: `--ca-root-crl`) with the own bundle
  /// from now on: in the SPIFFE validator's contexts, when they cover every CA above the one that
  /// signs leaves.
  package func installChainRevocationLists(_ lists: [CertificateRevocationList]) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installation: inout TrustInstallation) throws(CertificateAuthorityError) in
      installation.revocationChain.lists = lists
      try self.pushTrust(installation)
    }
  }

  /// Why the SPIFFE validator's contexts carry no revocation list while the plain ones do, if so.
  package var revocationGap: String? {
    self.node.read { $0.trust.trust?.revocationCoverage.spiffeGap }
  }

  /// The operator's lists for the intermediates, as installed (served only when they cover the chain).
  package var installedChainRevocationLists: [CertificateRevocationList] {
    self.trust.withLock { $0.revocationChain.lists }
  }
}
