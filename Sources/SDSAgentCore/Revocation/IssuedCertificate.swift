import Foundation

/// What the CA remembers of one certificate it signed: enough to revoke it by serial or by
/// identity, and to forget it once it expired.
package struct IssuedCertificate: Sendable, Hashable, Codable {
  package let serial: CertificateSerial
  package let identity: SPIFFEID
  package let notAfter: Date

  package init(serial: CertificateSerial, identity: SPIFFEID, notAfter: Date) {
    self.serial = serial
    self.identity = identity
    self.notAfter = notAfter
  }
}
