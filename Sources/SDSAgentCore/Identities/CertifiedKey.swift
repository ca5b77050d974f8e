import Foundation
import X509

/// A workload's X.509 SVID: the leaf, its intermediates and the private key that matches the
/// leaf. The match is checked at construction, so a `CertifiedKey` can never pair a key with
/// somebody else's certificate.
public struct CertifiedKey: Sendable {
  public let identity: SPIFFEID
  /// Leaf first, then the intermediates up to (not including) the root.
  public let chain: [Certificate]
  public let privateKey: WorkloadPrivateKey
  /// When the agent received the certificate; rotation is scheduled from here.
  public let issuedAt: Date

  public var leaf: Certificate { self.chain[0] }
  public var notBefore: Date { self.leaf.notValidBefore }
  public var notAfter: Date { self.leaf.notValidAfter }

  public init(
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
    self.privateKey = privateKey
    self.issuedAt = issuedAt
  }

  public func isValid(at date: Date) -> Bool {
    self.notBefore <= date && date < self.notAfter
  }
}

extension Certificate {
  /// The SPIFFE IDs among the URI subject alternative names.
  public var spiffeIDs: [SPIFFEID] {
    guard let sans = try? self.extensions.subjectAlternativeNames else { return [] }
    return sans.compactMap { name in
      guard case .uniformResourceIdentifier(let uri) = name else { return nil }
      return try? SPIFFEID(parsing: uri)
    }
  }

  /// The serial number as lowercase hex without separators, as Envoy's admin `/certs` shows it.
  public var serialHex: String {
    let hex = self.serialNumber.bytes.map { byte in
      let digits = String(byte, radix: 16)
      return digits.count == 1 ? "0" + digits : digits
    }.joined()
    let trimmed = hex.drop(while: { $0 == "0" })
    return trimmed.isEmpty ? "0" : String(trimmed)
  }

  public var isSelfSigned: Bool {
    self.issuer == self.subject
      && (try? self.extensions.basicConstraints).map {
        if case .isCertificateAuthority = $0 { return true }
        return false
      } ?? false
  }

  public func pemString() throws -> String {
    try self.serializeAsPEM().pemString
  }
}
