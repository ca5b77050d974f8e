import Foundation
import SwiftASN1
import X509

/// The embedded CA: signs workload SVIDs with `CAMaterial` held in memory.
package struct LocalCA: CertificateAuthority {
  package let material: CAMaterial
  /// How far `notBefore` is set before the moment of issuance, for peers with skewed clocks.
  package let backdate: Duration
  /// Written into every leaf it signs (`ca serve --crl-url`).
  package let crlDistributionPoint: CRLDistributionPoint?

  package init(
    material: CAMaterial, backdate: Duration = .seconds(10), crlDistributionPoint: CRLDistributionPoint? = nil
  ) {
    self.material = material
    self.backdate = backdate
    self.crlDistributionPoint = crlDistributionPoint
  }

  package func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date
  ) throws(CertificateAuthorityError) -> IssuedSVID {
    let chain = try self.sign(publicKey: privateKey.publicKey, identity: identity, ttl: ttl, now: now)
    let certifiedKey = try CertifiedKey(identity: identity, chain: chain, privateKey: privateKey, issuedAt: now)
    return IssuedSVID(certifiedKey: certifiedKey, trustBundle: self.material.trustBundle)
  }

  /// The local CA needs no credential: the agent decided who the caller is.
  package func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) throws(CertificateAuthorityError) -> IssuedSVID {
    try self.certify(identity: identity, privateKey: privateKey, ttl: ttl, now: now)
  }

  /// Signs a leaf for `publicKey` as `identity`; returns it with the intermediates.
  package func sign(
    publicKey: Certificate.PublicKey,
    identity: SPIFFEID,
    ttl: Duration,
    now: Date
  ) throws(CertificateAuthorityError) -> [Certificate] {
    try self.signLeaf(
      publicKey: publicKey, name: .uniformResourceIdentifier(identity.description), usages: [.serverAuth, .clientAuth],
      ttl: ttl, now: now, what: "\(identity)")
  }

  /// Signs a TLS server certificate for `publicKey` with `name` as its DNS SAN.
  package func signServer(
    publicKey: Certificate.PublicKey,
    name: DNSName,
    ttl: Duration,
    now: Date
  ) throws(CertificateAuthorityError) -> [Certificate] {
    try self.signLeaf(
      publicKey: publicKey, name: .dnsName(name.name), usages: [.serverAuth], ttl: ttl, now: now, what: name.name)
  }

  private func signLeaf(
    publicKey: Certificate.PublicKey,
    name: GeneralName,
    usages: [ExtendedKeyUsage.Usage],
    ttl: Duration,
    now: Date,
    what: String
  ) throws(CertificateAuthorityError) -> [Certificate] {
    let caNotAfter = self.material.certificate.notValidAfter
    guard now < caNotAfter else {
      throw CertificateAuthorityError(
        .caUnusable,
        "the CA certificate expired at \(caNotAfter); replace the CA or remove it from the state directory to regenerate"
      )
    }
    let notAfter = min(now.addingTimeInterval(ttl.seconds), caNotAfter)
    do {
      let leaf = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: publicKey,
        notValidBefore: now.addingTimeInterval(-self.backdate.seconds),
        notValidAfter: notAfter,
        issuer: self.material.certificate.subject,
        subject: DistinguishedName(),
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
          try ExtendedKeyUsage(usages)
          AuthorityKeyIdentifier(
            keyIdentifier: try? self.material.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
          )
          Critical(SubjectAlternativeNames([name]))
          if let crlDistributionPoint { crlDistributionPoint }
        },
        issuerPrivateKey: self.material.privateKey
      )
      return [leaf] + self.material.chainAfterLeaf
    } catch {
      throw CertificateAuthorityError(.signingFailed, "signing the certificate for \(what) failed", cause: error)
    }
  }
}
