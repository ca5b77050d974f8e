import Foundation

extension AdminAPI.Secret {
  /// A JWT-SVID an SDS stream holds (`jwt-svid:<audience>`, `"kind": "jwt_svid"`): whose, when it
  /// was signed and expires, when it is signed again. Never the token.
  package struct JWTSVID: Codable, Sendable, Equatable {
    static let kind = "jwt_svid"

    package var name: String
    package var identity: String
    package var issuedAt: Date
    package var expiresAt: Date
    package var nextRenewal: Date
    package var version: UInt64

    enum CodingKeys: String, CodingKey {
      case name, kind, identity, version
      case issuedAt = "issued_at"
      case expiresAt = "expires_at"
      case nextRenewal = "next_renewal"
    }

    package init(name: String, identity: String, issuedAt: Date, expiresAt: Date, version: UInt64) {
      self.name = name
      self.identity = identity
      self.issuedAt = issuedAt
      self.expiresAt = expiresAt
      self.nextRenewal = issuedAt.addingTimeInterval(expiresAt.timeIntervalSince(issuedAt) / 2)
      self.version = version
    }

    package init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      self.name = try container.decode(String.self, forKey: .name)
      self.identity = try container.decode(String.self, forKey: .identity)
      self.issuedAt = try container.decode(Date.self, forKey: .issuedAt)
      self.expiresAt = try container.decode(Date.self, forKey: .expiresAt)
      self.nextRenewal = try container.decode(Date.self, forKey: .nextRenewal)
      self.version = try container.decode(UInt64.self, forKey: .version)
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(Self.kind, forKey: .kind)
      try container.encode(self.identity, forKey: .identity)
      try container.encode(self.issuedAt, forKey: .issuedAt)
      try container.encode(self.expiresAt, forKey: .expiresAt)
      try container.encode(self.nextRenewal, forKey: .nextRenewal)
      try container.encode(self.version, forKey: .version)
    }
  }
}
