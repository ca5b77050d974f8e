import Crypto
import Foundation

/// A JWK (RFC 7517) as a SPIFFE bundle document or the state directory writes one: every member
/// optional, so that a key of another type decodes and is then skipped.
package struct JWK: Codable, Sendable, Equatable {
  package var kty: String?
  package var crv: String?
  package var x: String?
  package var y: String?
  package var kid: String?
  package var use: String?
}

extension JWTPublicKey {
  /// The longest `kid` accepted from a file, in bytes.
  package static let maximumKeyIDBytes = 256

  /// Why a JWK cannot verify JWT-SVIDs here.
  package enum JWKRefusal: Error, Sendable, Equatable {
    /// Not an EC P-256 key: another algorithm, which the validator does not speak (ES256 only).
    case unsupported
    /// A P-256 key whose `kid` or coordinates are missing or wrong; says which.
    case malformed(String)
  }

  /// The key `jwk` describes, if it is an EC P-256 key with a `kid`.
  package init(jwk: JWK) throws(JWKRefusal) {
    guard jwk.kty == "EC", jwk.crv == "P-256" else { throw .unsupported }
    guard let kid = jwk.kid, !kid.isEmpty, kid.utf8.count <= Self.maximumKeyIDBytes else {
      throw .malformed("its kid is missing or longer than \(Self.maximumKeyIDBytes) bytes")
    }
    guard let x = jwk.x.flatMap({ Base64URL.decode(Substring($0)) }), x.count == 32,
      let y = jwk.y.flatMap({ Base64URL.decode(Substring($0)) }), y.count == 32
    else {
      throw .malformed("its x and y are not 32-byte base64url coordinates")
    }
    do {
      self.init(kid: kid, key: try P256.Signing.PublicKey(x963Representation: [0x04] + x + y))
    } catch {
      throw .malformed("its point is not on the P-256 curve")
    }
  }

  /// The key as a `JWK` value.
  package var jwkValue: JWK {
    let members = self.jwk
    return JWK(
      kty: members["kty"], crv: members["crv"], x: members["x"], y: members["y"], kid: members["kid"],
      use: members["use"])
  }
}
