import Foundation

/// The own trust domain's JWT keys through root rotations, as a value: the key that signs; a
/// prepared key, published from the root's prepare and signing from its switch; and keys that
/// signed before a switch, published until the last token they signed has expired.
package struct JWTSigningKeys: Sendable {
  /// A key that no longer signs, published until `retireAt`.
  package struct Retiring: Sendable, Equatable, Codable {
    package let key: JWTPublicKey
    /// When the last token it signed expires: one JWT-SVID lifetime after the switch.
    package let retireAt: Date
    /// The `kid` of the key that signs in its place.
    package let replacedBy: String

    package init(key: JWTPublicKey, retireAt: Date, replacedBy: String) {
      self.key = key
      self.retireAt = retireAt
      self.replacedBy = replacedBy
    }

    private enum CodingKeys: String, CodingKey {
      case jwk
      case retireAt = "retire_at"
      case replacedBy = "replaced_by"
    }

    package init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let jwk = try container.decode(JWK.self, forKey: .jwk)
      do {
        self.key = try JWTPublicKey(jwk: jwk)
      } catch {
        throw DecodingError.dataCorruptedError(
          forKey: .jwk, in: container, debugDescription: "not an EC P-256 key with a kid")
      }
      self.retireAt = try container.decode(Date.self, forKey: .retireAt)
      self.replacedBy = try container.decode(String.self, forKey: .replacedBy)
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.key.jwkValue, forKey: .jwk)
      try container.encode(self.retireAt, forKey: .retireAt)
      try container.encode(self.replacedBy, forKey: .replacedBy)
    }
  }

  package private(set) var signing: JWTSigningKey
  package private(set) var next: JWTSigningKey?
  /// Oldest first.
  package private(set) var retiring: [Retiring]

  package init(signing: JWTSigningKey, next: JWTSigningKey? = nil, retiring: [Retiring] = []) {
    self.signing = signing
    self.next = next
    self.retiring = retiring
  }

  /// Every key published: the signing key, the prepared one, then the retiring ones.
  package var published: [JWTPublicKey] {
    [self.signing.publicKey] + (self.next.map { [$0.publicKey] } ?? []) + self.retiring.map(\.key)
  }

  /// The earliest retirement due, if a key is retiring.
  package var nextRetirement: Date? { self.retiring.map(\.retireAt).min() }

  /// Publishes `key`, which signs from the next switch.
  package mutating func prepare(_ key: JWTSigningKey) {
    self.next = key
  }

  /// The prepared key signs from `now`; the key it replaces stays published until `ttl` after
  /// `now`, when the last token it signed has expired. Without a prepared key, nothing changes.
  @discardableResult
  package mutating func switchToNext(at now: Date, ttl: Duration) -> Bool {
    guard let next = self.next else { return false }
    self.retiring.append(
      Retiring(key: self.signing.publicKey, retireAt: now.addingTimeInterval(ttl.seconds), replacedBy: next.kid))
    self.signing = next
    self.next = nil
    return true
  }

  /// Stops publishing the keys whose last token has expired by `now`, and returns them.
  package mutating func retire(now: Date) -> [Retiring] {
    let due = self.retiring.filter { $0.retireAt <= now }
    self.retiring.removeAll { $0.retireAt <= now }
    return due
  }
}
