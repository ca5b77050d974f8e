extension EmbeddedCA.Roots {
  /// The roots that sign their own revocation lists: every root trusted now, when the CA holds
  /// each one's key and signs leaves with a root itself. Envoy checks a CRL for every CA of a
  /// chain once one CRL is served (CRL_CHECK_ALL), so a trusted root without a list would fail
  /// its leaves; then no root signs one and `notRevocable` says why.
  package var crlIssuers: [CRLIssuer] {
    guard self.notRevocable == nil else { return [] }
    let previous = zip([self.previous].compactMap { $0 }, [self.previousKey].compactMap { $0 }).map {
      CRLIssuer(certificate: $0, key: $1)
    }
    return previous
      + ([self.signing] + [self.next].compactMap { $0 }).map {
        CRLIssuer(certificate: $0.certificate, key: $0.privateKey)
      }
  }

  /// Why no revocation list can be served now, if none can.
  package var notRevocable: String? {
    if let previous = self.previous, self.previousKey?.publicKey != previous.publicKey {
      return "the root that signed before the last root rotation is trusted until its leaves expire, "
        + "and its key is not kept, so it cannot sign a revocation list"
    }
    if !self.signing.certificate.isSelfSigned || self.next.map({ !$0.certificate.isSelfSigned }) == true {
      return "the CA signs through an intermediate; Envoy's SPIFFE validator would need a root-signed "
        + "revocation list for it"
    }
    return nil
  }
}
