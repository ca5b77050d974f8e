import Crypto
import Foundation
import SwiftASN1
import X509

/// A signing CA: its certificate and key, the intermediates up to the root, and the roots.
/// Validated at construction: the key matches the certificate, the certificate is a CA, and the
/// chain links each certificate to the next.
package struct CAMaterial: Sendable {
  package let certificate: Certificate
  package let privateKey: Certificate.PrivateKey
  /// Certificates between `certificate` and the root, excluding both.
  package let intermediates: [Certificate]
  package let trustBundle: TrustBundle

  package init(
    certificate: Certificate,
    privateKey: Certificate.PrivateKey,
    chain: [Certificate]
  ) throws(CAMaterialError) {
    guard certificate.publicKey == privateKey.publicKey else {
      throw CAMaterialError("the CA private key does not match the CA certificate")
    }
    guard case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority
    else {
      throw CAMaterialError(
        "the CA certificate \(certificate.subject) is not a CA (basicConstraints CA:TRUE is missing)"
      )
    }
    var path = [certificate] + chain.filter { $0 != certificate }
    // The chain file may or may not repeat the root; keep certificates in issuance order.
    for (child, parent) in zip(path, path.dropFirst()) where child.issuer != parent.subject {
      throw CAMaterialError(
        "the CA chain is out of order: \(child.subject) is issued by \(child.issuer), not by \(parent.subject)"
      )
    }
    guard let root = path.last, root.isSelfSigned else {
      throw CAMaterialError(
        "the CA chain does not end with a self-signed root: add the root certificate to the chain file"
      )
    }
    path.removeLast()
    self.certificate = certificate
    self.privateKey = privateKey
    self.intermediates = Array(path.dropFirst())
    self.trustBundle = TrustBundle(roots: [root])
  }

  /// The certificates served after a leaf: the signing CA (unless it is the root) and the
  /// intermediates.
  package var chainAfterLeaf: [Certificate] {
    self.certificate.isSelfSigned ? [] : [self.certificate] + self.intermediates
  }

  /// Creates a self-signed ECDSA P-256 root for `trustDomain`; `commonName` tells roots of one
  /// trust domain apart.
  package static func generateRoot(
    trustDomain: String,
    now: Date,
    validity: Duration = .seconds(10 * 365 * 86400),
    commonName: String = "sds-agent local CA"
  ) throws -> CAMaterial {
    let key = P256.Signing.PrivateKey()
    let privateKey = Certificate.PrivateKey(key)
    let name = try DistinguishedName {
      OrganizationName(trustDomain)
      CommonName(commonName)
    }
    let publicKey = privateKey.publicKey
    let certificate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: publicKey,
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: now.addingTimeInterval(validity.seconds),
      issuer: name,
      subject: name,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        SubjectKeyIdentifier(hash: publicKey)
        SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://\(trustDomain)")])
      },
      issuerPrivateKey: privateKey
    )
    return try CAMaterial(certificate: certificate, privateKey: privateKey, chain: [])
  }
}

/// Why CA material cannot be used.
package struct CAMaterialError: AgentFailure {
  package enum Code: String, Sendable {
    /// The material is not a usable CA: its key, its validity, its constraints or its chain.
    case unusable
  }

  package var code: Code { .unusable }
  package let message: String

  package init(_ message: String) {
    self.message = message
  }

  package var description: String { self.message }
}

extension Duration {
  /// The duration in seconds, as `TimeInterval`.
  package var seconds: TimeInterval {
    let (seconds, attoseconds) = self.components
    return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
  }
}
