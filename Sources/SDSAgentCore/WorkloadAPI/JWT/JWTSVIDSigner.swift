import Crypto
import Foundation

/// Signs JWT-SVIDs (ES256): `sub` the SPIFFE ID, `aud` as asked, `iat` now, `exp` after the TTL,
/// the key's `kid` in the header.
package struct JWTSVIDSigner: Sendable {
  package let key: JWTSigningKey

  package init(key: JWTSigningKey) {
    self.key = key
  }

  package func sign(
    _ spiffeID: SPIFFEID, audience: [String], issuedAt: Date, ttl: Duration
  ) throws(JWTSVIDFailure) -> JWTSVID {
    guard !audience.isEmpty else {
      throw JWTSVIDFailure(.invalidRequest, "a JWT-SVID needs at least one audience")
    }
    let iat = Int64(issuedAt.timeIntervalSince1970.rounded(.down))
    let exp = iat + ttl.components.seconds
    let header = Header(alg: "ES256", kid: self.key.kid, typ: "JWT")
    let claims = Claims(aud: audience, exp: exp, iat: iat, sub: spiffeID.description)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let signingInput: String
    let signature: Data
    do {
      signingInput =
        Base64URL.encode(try encoder.encode(header)) + "." + Base64URL.encode(try encoder.encode(claims))
      signature = try self.key.key.signature(for: Data(signingInput.utf8)).rawRepresentation
    } catch {
      throw JWTSVIDFailure(.signing, "the JWT-SVID for \(spiffeID) could not be signed")
    }
    return JWTSVID(
      token: signingInput + "." + Base64URL.encode(signature), spiffeID: spiffeID, audience: audience,
      issuedAt: Date(timeIntervalSince1970: TimeInterval(iat)),
      expiresAt: Date(timeIntervalSince1970: TimeInterval(exp)), kid: self.key.kid)
  }

  private struct Header: Encodable {
    let alg: String
    let kid: String
    let typ: String
  }

  private struct Claims: Encodable {
    let aud: [String]
    let exp: Int64
    let iat: Int64
    let sub: String
  }
}
