import Crypto
import Foundation
import SDSAgentCore
import X509

/// An operator's CA that signs through an intermediate, minted in code: the root (which signs
/// the intermediate and the root's revocation list) and the intermediate the agent signs with.
package struct OperatorIntermediate: Sendable {
  package let root: CAMaterial
  /// The intermediate's material: its key, and the root as its chain.
  package let material: CAMaterial

  /// `crlSign: false` leaves cRLSign out of the intermediate's keyUsage.
  package init(now: Date, crlSign: Bool = true) throws {
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: now, commonName: "operator root")
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    let intermediate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: key.publicKey,
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: now.addingTimeInterval(365 * 86400),
      issuer: root.certificate.subject,
      subject: try DistinguishedName {
        OrganizationName("cluster.local")
        CommonName("operator intermediate")
      },
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: crlSign))
        SubjectKeyIdentifier(hash: key.publicKey)
      },
      issuerPrivateKey: root.privateKey)
    self.root = root
    self.material = try CAMaterial(certificate: intermediate, privateKey: key, chain: [root.certificate])
  }

  /// The root's list naming `revoked` (the intermediate's serial, say), valid from `now` for `validity`.
  package func rootList(
    number: Int, revoked: [RevokedCertificate] = [], now: Date, validity: Duration = .seconds(3600)
  ) throws -> CertificateRevocationList {
    try CertificateRevocationList(
      issuer: self.root.certificate, issuerKey: self.root.privateKey, number: number, entries: revoked,
      thisUpdate: now, nextUpdate: now.addingTimeInterval(validity.seconds))
  }
}
