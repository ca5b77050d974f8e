import GRPCCore
import X509

extension IstioCertificateSigner {
  /// Writes the certificate to the issuance ledger before its answer leaves. A ledger that can
  /// take no more (its datastore down and its backlog full) fails the call with `UNAVAILABLE`,
  /// and the certificate is never handed out.
  func record(_ leaf: Certificate, identity: SPIFFEID, caller: SPIFFEID) async throws {
    guard let ledger = self.ledger else { return }
    let issuance = LedgerChain.Issuance(
      serial: leaf.serialHex, spiffeID: identity.description, caller: caller.description,
      impersonatedBy: caller == identity ? nil : caller.description, replica: self.replica,
      notBefore: leaf.notValidBefore, notAfter: leaf.notValidAfter)
    do throws(LedgerUnavailable) {
      try await ledger.record(issuance)
    } catch {
      var trailers = Metadata()
      trailers.addString("1000", forKey: Self.retryPushbackKey)
      throw RPCError(
        code: .unavailable, message: "the CA cannot record what it signs; retry after grpc-retry-pushback-ms",
        metadata: trailers)
    }
  }
}
