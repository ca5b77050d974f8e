import Foundation

/// One entry of a revocation list: which certificate, since when, why, and until when it matters
/// (after the certificate's own expiry the entry is dropped, RFC 5280 §5.1.2.6 allows it).
public struct RevokedCertificate: Sendable, Hashable, Codable {
  public let serial: CertificateSerial
  public let revokedAt: Date
  public let reason: RevocationReason
  /// The revoked certificate's notAfter.
  public let notAfter: Date

  public init(serial: CertificateSerial, revokedAt: Date, reason: RevocationReason, notAfter: Date) {
    self.serial = serial
    self.revokedAt = revokedAt
    self.reason = reason
    self.notAfter = notAfter
  }
}
