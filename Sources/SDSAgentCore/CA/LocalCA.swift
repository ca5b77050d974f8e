import Foundation
import SwiftASN1
import X509

/// The embedded CA: signs workload SVIDs with `CAMaterial` held in memory.
public struct LocalCA: CertificateAuthority {
  public let material: CAMaterial
  /// How far `notBefore` is set before the moment of issuance, for peers with skewed clocks.
  public let backdate: Duration

  public init(material: CAMaterial, backdate: Duration = .seconds(10)) {
    self.material = material
    self.backdate = backdate
  }

  public func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date
  ) throws(CertificateAuthorityError) -> IssuedSVID {
    let caNotAfter = self.material.certificate.notValidAfter
    guard now < caNotAfter else {
      throw CertificateAuthorityError(
        .caUnusable,
        "the CA certificate expired at \(caNotAfter); replace the CA or remove it from the state directory to regenerate"
      )
    }
    let notAfter = min(now.addingTimeInterval(ttl.seconds), caNotAfter)
    let leaf: Certificate
    do {
      leaf = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: privateKey.publicKey,
        notValidBefore: now.addingTimeInterval(-self.backdate.seconds),
        notValidAfter: notAfter,
        issuer: self.material.certificate.subject,
        subject: DistinguishedName(),
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
          try ExtendedKeyUsage([.serverAuth, .clientAuth])
          AuthorityKeyIdentifier(
            keyIdentifier: try? self.material.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
          )
          Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)]))
        },
        issuerPrivateKey: self.material.privateKey
      )
    } catch {
      throw CertificateAuthorityError(.signingFailed, "signing the certificate for \(identity) failed: \(error)")
    }
    let certifiedKey = try CertifiedKey(
      identity: identity,
      chain: [leaf] + self.material.chainAfterLeaf,
      privateKey: privateKey,
      issuedAt: now
    )
    return IssuedSVID(certifiedKey: certifiedKey, trustBundle: self.material.trustBundle)
  }
}
