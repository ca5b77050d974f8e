import X509

/// What stands between the leaves and the own roots when the CA signs through an intermediate:
/// the intermediates, and the lists the operator gives for them (`--ca-root-crl`: the root's list,
/// and those of intermediates above the one that signs).
package struct RevocationChain: Sendable, Equatable {
  /// The intermediates, the one that signs leaves first; empty when a root signs them.
  package var intermediates: [Certificate]
  /// Lists signed by an own root or by an intermediate above the one that signs leaves.
  package var lists: [CertificateRevocationList]

  package init(intermediates: [Certificate] = [], lists: [CertificateRevocationList] = []) {
    self.intermediates = intermediates
    self.lists = lists
  }
}
