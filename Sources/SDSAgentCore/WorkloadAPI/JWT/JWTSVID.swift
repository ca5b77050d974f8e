import Foundation

/// A signed JWT-SVID: the compact token and what it says. Its `description` never shows the
/// token, which is a bearer credential.
package struct JWTSVID: Sendable, CustomStringConvertible {
  package let token: String
  package let spiffeID: SPIFFEID
  package let audience: [String]
  package let issuedAt: Date
  package let expiresAt: Date
  /// The `kid` of the key that signed it.
  package let kid: String

  package var description: String {
    "JWTSVID(\(self.spiffeID), aud: \(self.audience), exp: \(self.expiresAt), <redacted>)"
  }
}
