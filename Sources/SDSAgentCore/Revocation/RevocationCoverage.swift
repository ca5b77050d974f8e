import X509

/// Which revocation lists each kind of own validation context carries, so that no chain of the
/// own trust domain fails for want of a list. Once a list is served, Envoy wants one for every CA
/// of a chain (CRL_CHECK_ALL), except in a plain context with `only_verify_leaf_cert_crl`, where it
/// checks only the leaf against its issuer's list; the SPIFFE validator always checks the whole
/// chain and ignores that flag.
package struct RevocationCoverage: Sendable, Equatable {
  /// The lists of `ROOTCA` and the own plain `spiffe://<td>` context (their `crl`).
  package let plain: [CertificateRevocationList]
  /// Whether the plain contexts check only the leaf (`only_verify_leaf_cert_crl`).
  package let onlyVerifiesLeaf: Bool
  /// The lists inside the own domain's bundle of the SPIFFE validator.
  package let spiffe: [CertificateRevocationList]
  /// Why the SPIFFE validator's contexts carry no list though the plain ones do, if they do not.
  package let spiffeGap: String?

  private init(
    plain: [CertificateRevocationList], onlyVerifiesLeaf: Bool, spiffe: [CertificateRevocationList], spiffeGap: String?
  ) {
    self.plain = plain
    self.onlyVerifiesLeaf = onlyVerifiesLeaf
    self.spiffe = spiffe
    self.spiffeGap = spiffeGap
  }

  /// Roots that sign leaves: one list per root, or none at all. Through an intermediate: its
  /// list in the plain contexts (leaf only), and in the SPIFFE validator's only with a list of
  /// every CA above it from `chain`.
  package init(roots: [Certificate], issuerLists: [CertificateRevocationList], chain: RevocationChain) {
    guard let signing = chain.intermediates.first else {
      let covering = Self.covering(roots, from: issuerLists) ?? []
      self.init(plain: covering, onlyVerifiesLeaf: false, spiffe: covering, spiffeGap: nil)
      return
    }
    guard let leafList = issuerLists.first(where: { $0.isSigned(by: signing) }) else {
      self.init(plain: [], onlyVerifiesLeaf: false, spiffe: [], spiffeGap: nil)
      return
    }
    let above = Array(chain.intermediates.dropFirst()) + roots
    guard let upper = Self.covering(above, from: chain.lists) else {
      self.init(
        plain: [leafList], onlyVerifiesLeaf: true, spiffe: [],
        spiffeGap: "the CA signs through an intermediate and no current root-signed list for it is held "
          + "(--ca-root-crl): the SPIFFE validator's contexts (ALL, spiffe://<td>) carry no revocation list")
      return
    }
    var upperLists: [CertificateRevocationList] = []
    for list in upper where !upperLists.contains(list) { upperLists.append(list) }
    self.init(plain: [leafList], onlyVerifiesLeaf: true, spiffe: [leafList] + upperLists, spiffeGap: nil)
  }

  /// Every list served in any context, each once.
  package var all: [CertificateRevocationList] {
    var all = self.plain
    for list in self.spiffe where !all.contains(list) { all.append(list) }
    return all
  }

  /// The list of each of `issuers`, if every one has one.
  private static func covering(
    _ issuers: [Certificate], from lists: [CertificateRevocationList]
  ) -> [CertificateRevocationList]? {
    var covering: [CertificateRevocationList] = []
    for issuer in issuers {
      guard let list = lists.first(where: { $0.isSigned(by: issuer) }) else { return nil }
      covering.append(list)
    }
    return covering
  }
}
