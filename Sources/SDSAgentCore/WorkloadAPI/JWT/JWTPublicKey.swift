import Crypto
import Foundation

/// A public key that verifies JWT-SVIDs (ES256), with its `kid`: one key of a JWT bundle.
package struct JWTPublicKey: Sendable, Equatable {
  package let kid: String
  package let key: P256.Signing.PublicKey

  package init(kid: String, key: P256.Signing.PublicKey) {
    self.kid = kid
    self.key = key
  }

  /// The key as a JWK (RFC 7517), marked for JWT-SVIDs as SPIFFE bundles mark it.
  var jwk: [String: String] {
    let (x, y) = self.coordinates
    return ["kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.kid, "use": "jwt-svid"]
  }

  /// The RFC 7638 thumbprint of `key`: the `kid` a key gets, so that the name follows from it.
  static func thumbprint(of key: P256.Signing.PublicKey) -> String {
    let (x, y) = JWTPublicKey(kid: "", key: key).coordinates
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
    return Base64URL.encode(Data(SHA256.hash(data: Data(canonical.utf8))))
  }

  /// The base64url x and y coordinates (the uncompressed point is 0x04 ‖ x ‖ y).
  private var coordinates: (x: String, y: String) {
    let point = self.key.x963Representation
    return (Base64URL.encode(point.dropFirst().prefix(32)), Base64URL.encode(point.suffix(32)))
  }

  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.kid == rhs.kid && lhs.key.rawRepresentation == rhs.key.rawRepresentation
  }
}
