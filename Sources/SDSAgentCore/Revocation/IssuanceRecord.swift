/// Where a CA remembers what it signed, so a certificate can later be revoked by serial or by
/// identity. The record is durable before `record` returns: a certificate is served only after.
package protocol IssuanceRecord: Sendable {
  func record(_ certificate: IssuedCertificate) async throws(CertificateAuthorityError)
}
