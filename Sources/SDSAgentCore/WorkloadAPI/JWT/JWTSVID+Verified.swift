import Foundation

extension JWTSVID {
  /// A token whose signature, expiry and audiences have been verified (`JWTSVIDValidator`), with
  /// its `kid`, `iat` and `exp` read from it.
  init(
    verifiedToken token: String, spiffeID: SPIFFEID, audience: [String], claimsJSON: Data
  ) throws(JWTSVIDFailure) {
    struct Header: Decodable { let kid: String }
    struct Claims: Decodable {
      let iat: Double?
      let exp: Double
    }
    guard let part = token.split(separator: ".", omittingEmptySubsequences: false).first,
      let headerJSON = Base64URL.decode(part),
      let header = try? JSONDecoder().decode(Header.self, from: headerJSON),
      let claims = try? JSONDecoder().decode(Claims.self, from: claimsJSON)
    else {
      throw JWTSVIDFailure(.malformed, "the token lacks a kid or an exp")
    }
    let expiresAt = Date(timeIntervalSince1970: claims.exp)
    // A token without `iat` is taken as issued one lifetime of the default before it expires.
    let issuedAt = claims.iat.map { Date(timeIntervalSince1970: $0) } ?? expiresAt.addingTimeInterval(-300)
    self.init(
      token: token, spiffeID: spiffeID, audience: audience, issuedAt: issuedAt, expiresAt: expiresAt, kid: header.kid)
  }
}
