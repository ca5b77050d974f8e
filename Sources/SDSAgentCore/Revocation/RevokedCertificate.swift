import Foundation

/// One entry of a revocation list: which certificate, since when, why, and until when it matters
/// (after the certificate's own expiry the entry is dropped, RFC 5280 §5.1.2.6 allows it).
package struct RevokedCertificate: Sendable, Hashable, Codable {
  package let serial: CertificateSerial
  package let revokedAt: Date
  package let reason: RevocationReason
  /// The revoked certificate's notAfter.
  package let notAfter: Date

  package init(serial: CertificateSerial, revokedAt: Date, reason: RevocationReason, notAfter: Date) {
    self.serial = serial
    self.revokedAt = revokedAt
    self.reason = reason
    self.notAfter = notAfter
  }
}
