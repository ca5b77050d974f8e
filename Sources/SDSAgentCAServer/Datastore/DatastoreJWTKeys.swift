import Crypto
import Foundation
import SDSAgentCore
import X509

/// The JWT signing keys of `ca serve --datastore`, derived from the shared roots' private keys
/// (HKDF-SHA256), so every replica holds the same keys without storing any: the signing root's
/// key signs, the prepared root's is published from the prepare, and the previous root's stays
/// published one JWT-SVID lifetime after the switch. The keys change exactly when the roots do,
/// in the same transaction, so they cannot fall out of step with them. As a store it keeps
/// nothing: the roots' rows are the record.
struct DatastoreJWTKeys: JWTSigningKeyStore {
  let ca: EmbeddedCA
  let trustDomain: TrustDomainName

  /// HKDF's `info`, before the trust domain and a counter byte.
  static let label = Array("sds-agent jwt-svid signing key v1\n".utf8)

  /// The keys in step with `roots` and the rotation in progress.
  static func keys(
    of roots: EmbeddedCA.Roots, rotation: RootRotation?, trustDomain: TrustDomainName, ttl: Duration, now: Date
  ) throws -> JWTSigningKeys {
    let signing = try Self.key(of: roots.signing.privateKey, trustDomain: trustDomain)
    let next = try roots.next.map { try Self.key(of: $0.privateKey, trustDomain: trustDomain) }
    var retiring: [JWTSigningKeys.Retiring] = []
    if let previousKey = roots.previousKey {
      let retireAt = (rotation?.switchedAt ?? now).addingTimeInterval(ttl.seconds)
      if retireAt > now {
        let previous = try Self.key(of: previousKey, trustDomain: trustDomain)
        retiring.append(.init(key: previous.publicKey, retireAt: retireAt, replacedBy: signing.kid))
      }
    }
    return JWTSigningKeys(signing: signing, next: next, retiring: retiring)
  }

  /// The JWT key of a root's key: HKDF-SHA256 over its canonical bytes (the scalar of an EC key,
  /// the DER of any other), the first output that is a valid P-256 scalar.
  static func key(of root: Certificate.PrivateKey, trustDomain: TrustDomainName) throws -> JWTSigningKey {
    let secret = SymmetricKey(data: try Self.canonicalBytes(of: root))
    for counter in UInt8(0)...UInt8(255) {
      let info = Self.label + Array(trustDomain.name.utf8) + [counter]
      let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: secret, info: info, outputByteCount: 32)
      let bytes = derived.withUnsafeBytes { Array($0) }
      if let key = try? P256.Signing.PrivateKey(rawRepresentation: bytes) { return JWTSigningKey(key) }
    }
    throw CertificateAuthorityError(.signingFailed, "no JWT signing key could be derived from the root's key")
  }

  /// Bytes that do not depend on how a library serializes the key: an EC key's scalar.
  private static func canonicalBytes(of key: Certificate.PrivateKey) throws -> [UInt8] {
    let der = try key.serializeAsPEM().derBytes
    if let p256 = try? P256.Signing.PrivateKey(derRepresentation: der) { return Array(p256.rawRepresentation) }
    if let p384 = try? P384.Signing.PrivateKey(derRepresentation: der) { return Array(p384.rawRepresentation) }
    if let p521 = try? P521.Signing.PrivateKey(derRepresentation: der) { return Array(p521.rawRepresentation) }
    return der
  }

  // MARK: - JWTSigningKeyStore

  /// The prepared root's key, which the supervisor installed before it asks.
  func makeNext() throws -> JWTSigningKey {
    guard let next = self.ca.roots.next else {
      throw CertificateAuthorityError(.signingFailed, "no prepared root to derive the next JWT signing key from")
    }
    return try Self.key(of: next.privateKey, trustDomain: self.trustDomain)
  }

  func switched(_ keys: JWTSigningKeys) throws {}

  func retired(_ keys: JWTSigningKeys) throws {}
}
