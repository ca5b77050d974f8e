import Foundation
import X509

/// A workload's X.509 SVID: the leaf, its intermediates and the private key that matches the
/// leaf. The match is checked at construction, so a `CertifiedKey` can never pair a key with
/// somebody else's certificate.
package struct CertifiedKey: Sendable {
  package let identity: SPIFFEID
  /// Leaf first, then the intermediates up to (not including) the root.
  package let chain: [Certificate]
  package let privateKey: WorkloadPrivateKey
  /// When the agent received the certificate; rotation is scheduled from here.
  package let issuedAt: Date

  package var leaf: Certificate { self.chain[0] }
  /// The leaf's validity, kept apart: every stream checks it on every change of its secrets, and
  /// reading it from the leaf copies the whole certificate.
  package let notBefore: Date
  package let notAfter: Date

  package init(
    identity: SPIFFEID,
    chain: [Certificate],
    privateKey: WorkloadPrivateKey,
    issuedAt: Date
  ) throws(CertificateAuthorityError) {
    guard let leaf = chain.first else {
      throw CertificateAuthorityError(.invalidResponse, "the certificate chain is empty")
    }
    guard leaf.publicKey == privateKey.publicKey else {
      throw CertificateAuthorityError(
        .invalidResponse,
        "the leaf certificate's public key does not match the workload's private key"
      )
    }
    let sans = leaf.spiffeIDs
    guard sans == [identity] else {
      throw CertificateAuthorityError(
        .invalidResponse,
        "the leaf certificate names \(sans.map(\.description)) instead of \(identity)"
      )
    }
    self.identity = identity
    self.chain = chain
    self.notBefore = leaf.notValidBefore
    self.notAfter = leaf.notValidAfter
    self.privateKey = privateKey
    self.issuedAt = issuedAt
  }

  package func isValid(at date: Date) -> Bool {
    self.notBefore <= date && date < self.notAfter
  }
}

extension Certificate {
  /// The SPIFFE IDs among the URI subject alternative names.
  package var spiffeIDs: [SPIFFEID] {
    guard let sans = try? self.extensions.subjectAlternativeNames else { return [] }
    return sans.compactMap { name in
      guard case .uniformResourceIdentifier(let uri) = name else { return nil }
      return try? SPIFFEID(parsing: uri)
    }
  }

  /// The serial number as lowercase hex without separators, as Envoy's admin `/certs` shows it.
  package var serialHex: String {
    let hex = self.serialNumber.bytes.map { byte in
      let digits = String(byte, radix: 16)
      return digits.count == 1 ? "0" + digits : digits
    }.joined()
    let trimmed = hex.drop(while: { $0 == "0" })
    return trimmed.isEmpty ? "0" : String(trimmed)
  }

  package var isSelfSigned: Bool {
    self.issuer == self.subject
      && (try? self.extensions.basicConstraints).map {
        if case .isCertificateAuthority = $0 { return true }
        return false
      } ?? false
  }

  package func pemString() throws -> String {
    try self.serializeAsPEM().pemString
  }
}
