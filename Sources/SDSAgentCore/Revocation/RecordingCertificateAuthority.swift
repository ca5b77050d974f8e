import Foundation

/// A CA that records every certificate it signs before handing it out: a certificate the record
/// could not keep is never served, so every served certificate can be revoked.
public struct RecordingCertificateAuthority: CertificateAuthority {
  public let authority: any CertificateAuthority
  public let record: any IssuanceRecord

  public init(_ authority: any CertificateAuthority, record: any IssuanceRecord) {
    self.authority = authority
    self.record = record
  }

  public func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    let issued = try await self.authority.certify(
      identity: identity, privateKey: privateKey, ttl: ttl, now: now, credential: credential)
    let leaf = issued.certifiedKey.leaf
    try self.record.record(
      IssuedCertificate(serial: CertificateSerial(leaf.serialNumber), identity: identity, notAfter: leaf.notValidAfter))
    return issued
  }
}
