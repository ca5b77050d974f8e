import Foundation

extension SecretSummary {
  /// A secret as `sds-agent fetch --json` prints it. Times are ISO 8601 text, empty when the
  /// secret holds no certificate; `validator` and `trustDomains` only for a SPIFFE validator's
  /// bundle, `privateKey` only when asked for.
  package struct Document: Codable, Sendable, Equatable {
    package var name: String
    package var kind: String
    package var spiffeID: String?
    package var subject: String
    package var serial: String
    package var notBefore: String
    package var notAfter: String
    package var chainLength: Int
    package var pem: String
    package var privateKey: String?
    package var validator: String?
    package var trustDomains: [String: [String]]?

    enum CodingKeys: String, CodingKey {
      case name, kind, subject, serial, pem, validator
      case spiffeID = "spiffe_id"
      case notBefore = "not_before"
      case notAfter = "not_after"
      case chainLength = "chain_length"
      case privateKey = "private_key"
      case trustDomains = "trust_domains"
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(self.kind, forKey: .kind)
      try container.encode(self.spiffeID, forKey: .spiffeID)
      try container.encode(self.subject, forKey: .subject)
      try container.encode(self.serial, forKey: .serial)
      try container.encode(self.notBefore, forKey: .notBefore)
      try container.encode(self.notAfter, forKey: .notAfter)
      try container.encode(self.chainLength, forKey: .chainLength)
      try container.encode(self.pem, forKey: .pem)
      try container.encodeIfPresent(self.privateKey, forKey: .privateKey)
      try container.encodeIfPresent(self.validator, forKey: .validator)
      try container.encodeIfPresent(self.trustDomains, forKey: .trustDomains)
    }
  }
}
