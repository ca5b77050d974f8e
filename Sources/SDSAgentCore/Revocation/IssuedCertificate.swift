import Foundation

/// What the CA remembers of one certificate it signed: enough to revoke it by serial or by
/// identity, and to forget it once it expired.
public struct IssuedCertificate: Sendable, Hashable, Codable {
  public let serial: CertificateSerial
  public let identity: SPIFFEID
  public let notAfter: Date

  public init(serial: CertificateSerial, identity: SPIFFEID, notAfter: Date) {
    self.serial = serial
    self.identity = identity
    self.notAfter = notAfter
  }
}
