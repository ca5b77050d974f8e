import Crypto

/// A key that signs JWT-SVIDs with ES256, named by the RFC 7638 thumbprint of its public key.
/// Its `description` never shows key material.
package struct JWTSigningKey: Sendable, CustomStringConvertible {
  let key: P256.Signing.PrivateKey
  package let kid: String

  package init(_ key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()) {
    self.key = key
    self.kid = JWTPublicKey.thumbprint(of: key.publicKey)
  }

  /// What verifies its signatures, for the JWT bundle.
  package var publicKey: JWTPublicKey { JWTPublicKey(kid: self.kid, key: self.key.publicKey) }

  package var description: String { "JWTSigningKey(kid: \(self.kid), <redacted>)" }
}
