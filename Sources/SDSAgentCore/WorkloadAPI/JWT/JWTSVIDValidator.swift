import Crypto
import Foundation

/// Validates a JWT-SVID as `ValidateJWTSVID` does: ES256 only (never `alg: none`), signed by a
/// key of the JWT bundle of the trust domain its `sub` names, not expired, and for the audience
/// asked. A refusal says why; it quotes the token's values only bounded.
package struct JWTSVIDValidator: Sendable {
  /// A validated token: whom it names and its claims, as the JSON object it carried.
  package struct Validated: Sendable {
    package let spiffeID: SPIFFEID
    package let claimsJSON: Data
  }

  package let bundles: [TrustDomainName: JWTBundle]

  package init(bundles: [JWTBundle]) {
    self.bundles = Dictionary(bundles.map { ($0.trustDomain, $0) }, uniquingKeysWith: { first, _ in first })
  }

  /// The longest token looked at, in bytes.
  package static let maximumTokenBytes = 16 * 1024

  package func validate(_ token: String, audience: String, now: Date) throws(JWTSVIDFailure) -> Validated {
    guard !audience.isEmpty else { throw JWTSVIDFailure(.invalidRequest, "an audience is required") }
    guard token.utf8.count <= Self.maximumTokenBytes else {
      throw JWTSVIDFailure(.malformed, "the token is \(token.utf8.count) bytes; at most \(Self.maximumTokenBytes)")
    }
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let headerJSON = Base64URL.decode(parts[0]), let claimsJSON = Base64URL.decode(parts[1]),
      let signature = Base64URL.decode(parts[2])
    else {
      throw JWTSVIDFailure(.malformed, "the token is not a JWT (three base64url parts)")
    }
    let header = try Self.decode(Header.self, headerJSON, what: "header")
    guard header.alg == "ES256" else {
      throw JWTSVIDFailure(
        .unsupportedAlgorithm,
        "the token's algorithm \(JWTSVIDFailure.quoted(header.alg ?? "")) is not ES256; unsigned tokens are refused")
    }
    let claims = try Self.decode(Claims.self, claimsJSON, what: "claims")
    let spiffeID: SPIFFEID
    do {
      spiffeID = try SPIFFEID(parsing: claims.sub ?? "")
    } catch {
      throw JWTSVIDFailure(.malformed, "the token's sub \(JWTSVIDFailure.quoted(claims.sub ?? "")) is not a SPIFFE ID")
    }
    let domain = TrustDomainName(of: spiffeID)
    guard let bundle = self.bundles[domain] else {
      throw JWTSVIDFailure(.unknownTrustDomain, "no JWT bundle for the trust domain \(domain)")
    }
    guard let kid = header.kid, let key = bundle.key(named: kid) else {
      throw JWTSVIDFailure(
        .unknownKey,
        "the token's kid \(JWTSVIDFailure.quoted(header.kid ?? "")) is not a key of the JWT bundle of \(domain)")
    }
    let signingInput = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
    guard let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
      key.key.isValidSignature(ecdsa, for: signingInput)
    else {
      throw JWTSVIDFailure(.badSignature, "the token's signature does not verify with the key \(kid)")
    }
    guard let exp = claims.exp else { throw JWTSVIDFailure(.malformed, "the token has no exp") }
    guard now.timeIntervalSince1970 < exp else {
      throw JWTSVIDFailure(.expired, "the token expired at \(Date(timeIntervalSince1970: exp))")
    }
    guard claims.aud?.values.contains(audience) == true else {
      throw JWTSVIDFailure(
        .wrongAudience, "the token is not for the audience \(JWTSVIDFailure.quoted(audience))")
    }
    return Validated(spiffeID: spiffeID, claimsJSON: claimsJSON)
  }

  private static func decode<T: Decodable>(_ type: T.Type, _ json: Data, what: String) throws(JWTSVIDFailure) -> T {
    do {
      return try JSONDecoder().decode(type, from: json)
    } catch {
      throw JWTSVIDFailure(.malformed, "the token's \(what) is not the JSON object a JWT-SVID has")
    }
  }

  private struct Header: Decodable {
    let alg: String?
    let kid: String?
  }

  private struct Claims: Decodable {
    let sub: String?
    let aud: Audience?
    let exp: Double?
  }

  /// `aud`: one string or an array of them (RFC 7519, section 4.1.3).
  private struct Audience: Decodable {
    let values: [String]

    init(from decoder: any Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let one = try? container.decode(String.self) {
        self.values = [one]
      } else {
        self.values = try container.decode([String].self)
      }
    }
  }
}
