import Crypto
import X509
import _CryptoExtras

/// A workload's private key. It is held in memory only and serialized solely into the SDS
/// `tls_certificate` it belongs to; its `description` never shows key material.
package struct WorkloadPrivateKey: Sendable, CustomStringConvertible {
  package let key: Certificate.PrivateKey
  /// PKCS#8 PEM, the form Envoy reads in `TlsCertificate.private_key`.
  package let pkcs8PEM: String

  package init(p256: P256.Signing.PrivateKey) {
    self.key = Certificate.PrivateKey(p256)
    self.pkcs8PEM = p256.pemRepresentation
  }

  package init(rsa: _RSA.Signing.PrivateKey) throws {
    self.key = Certificate.PrivateKey(rsa)
    self.pkcs8PEM = rsa.pkcs8PEMRepresentation
  }

  package var publicKey: Certificate.PublicKey { self.key.publicKey }

  package var description: String { "WorkloadPrivateKey(<redacted>)" }
}
