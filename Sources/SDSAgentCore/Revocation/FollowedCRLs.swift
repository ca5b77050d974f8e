import Foundation
import X509

/// Every CRL a fetch-mode agent follows, one `FollowedCRL` per certificate that signs one (a CA
/// root, or each root during a root rotation), whichever source it came from: the distribution
/// point and a `--ca-crl` file feed the same rows, so the newer list wins.
package struct FollowedCRLs: Sendable {
  private var byIssuer: [Certificate: FollowedCRL] = [:]

  package init() {}

  /// Offers a CRL to the row of the certificate of `issuers` that signed it.
  package mutating func offer(
    _ crl: CertificateRevocationList, issuers: [Certificate], now: Date
  ) -> FollowedCRL.Outcome {
    guard let signer = issuers.first(where: { crl.isSigned(by: $0) }) else { return .unverified }
    var row = self.byIssuer[signer] ?? FollowedCRL()
    let outcome = row.offer(crl, issuers: [signer], now: now)
    self.byIssuer[signer] = row
    return outcome
  }

  /// Forgets the rows of certificates no longer trusted.
  package mutating func keep(issuers: [Certificate]) {
    self.byIssuer = self.byIssuer.filter { issuers.contains($0.key) }
  }

  /// The CRLs that may be served now (each before its nextUpdate), in a stable order.
  package func servable(at now: Date) -> [CertificateRevocationList] {
    self.byIssuer.values.compactMap { $0.servable(at: now) }.sorted {
      $0.derBytes.lexicographicallyPrecedes($1.derBytes)
    }
  }

  /// The row of the certificate that signed `crl`.
  package func row(of crl: CertificateRevocationList) -> FollowedCRL? {
    self.byIssuer.first { $0.value.held == crl }?.value
  }

  /// When the first servable CRL passes its nextUpdate.
  package func nextExpiry(after now: Date) -> Date? {
    self.servable(at: now).map(\.nextUpdate).min()
  }

  /// True when a servable CRL lists `serial`.
  package func revokes(_ serial: CertificateSerial, at now: Date) -> Bool {
    self.servable(at: now).contains { $0.revokes(serial) }
  }
}
