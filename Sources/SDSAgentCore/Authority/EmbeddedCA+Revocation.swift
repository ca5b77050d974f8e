import X509

extension EmbeddedCA.Roots {
  /// The roots that sign their own revocation lists: every root trusted now, when the CA holds
  /// each one's key and signs leaves with a root itself. Envoy checks a CRL for every CA of a
  /// chain once one CRL is served (CRL_CHECK_ALL), so a trusted root without a list would fail
  /// its leaves; then no root signs one and `notRevocable` says why.
  package var crlIssuers: [CRLIssuer] { self.crlIssuers(throughIntermediates: false) }

  /// Why no revocation list can be served now, if none can.
  package var notRevocable: String? { self.notRevocable(throughIntermediates: false) }

  /// The CAs that sign their own revocation lists. With `throughIntermediates` (the agent, which
  /// serves a leaf issuer's list with `only_verify_leaf_cert_crl` and takes the lists above it
  /// from the operator), a CA that signs through an intermediate signs the intermediate's list.
  package func crlIssuers(throughIntermediates: Bool) -> [CRLIssuer] {
    guard self.notRevocable(throughIntermediates: throughIntermediates) == nil else { return [] }
    let previous = zip([self.previous].compactMap { $0 }, [self.previousKey].compactMap { $0 }).map {
      CRLIssuer(certificate: $0, key: $1)
    }
    return previous
      + ([self.signing] + [self.next].compactMap { $0 }).map {
        CRLIssuer(certificate: $0.certificate, key: $0.privateKey)
      }
  }

  /// Why no revocation list can be served now, if none can; `throughIntermediates` as in
  /// `crlIssuers(throughIntermediates:)`.
  package func notRevocable(throughIntermediates: Bool) -> String? {
    if let previous = self.previous, self.previousKey?.publicKey != previous.publicKey {
      return "the root that signed before the last root rotation is trusted until its leaves expire, "
        + "and its key is not kept, so it cannot sign a revocation list"
    }
    let intermediates = ([self.signing] + [self.next].compactMap { $0 }).map(\.certificate).filter {
      !$0.isSelfSigned
    }
    guard !intermediates.isEmpty else { return nil }
    guard throughIntermediates else {
      return "the CA signs through an intermediate; Envoy's SPIFFE validator would need a root-signed "
        + "revocation list for it"
    }
    if intermediates.contains(where: { (try? $0.extensions.keyUsage).map { !$0.cRLSign } ?? false }) {
      return "the intermediate CA that signs may not sign revocation lists (its keyUsage lacks cRLSign), "
        + "and Envoy refuses every certificate against a list it signed"
    }
    return nil
  }

  /// The CAs between the leaves and the roots, the one that signs leaves first; empty when a
  /// root signs them.
  package var intermediates: [Certificate] { self.signing.chainAfterLeaf }
}
