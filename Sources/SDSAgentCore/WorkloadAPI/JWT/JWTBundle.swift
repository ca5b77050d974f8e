import Foundation

/// One trust domain's JWT authorities: the keys whose JWT-SVIDs its members accept, published as
/// a JWK set (`FetchJWTBundles`) and used by `ValidateJWTSVID`.
package struct JWTBundle: Sendable, Equatable {
  package let trustDomain: TrustDomainName
  package let keys: [JWTPublicKey]

  package init(trustDomain: TrustDomainName, keys: [JWTPublicKey]) {
    self.trustDomain = trustDomain
    var unique: [JWTPublicKey] = []
    for key in keys where !unique.contains(where: { $0.kid == key.kid }) {
      unique.append(key)
    }
    self.keys = unique
  }

  package func key(named kid: String) -> JWTPublicKey? {
    self.keys.first { $0.kid == kid }
  }

  /// The JWK set (RFC 7517) `FetchJWTBundles` carries, keys in a stable order.
  package func jwks() -> Data {
    struct Document: Encodable {
      let keys: [[String: String]]
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    // A dictionary of strings always encodes.
    return (try? encoder.encode(Document(keys: self.keys.map(\.jwk)))) ?? Data(#"{"keys":[]}"#.utf8)
  }
}
