import Foundation

extension AdminAPI.Secret {
  /// Session ticket keys the node serves (`"kind": "session_ticket_keys"`): the epoch whose key
  /// comes first and that key's fingerprint (the first 8 hex digits of its SHA-256). Never a key.
  package struct SessionTicketKeys: Codable, Sendable, Equatable {
    static let kind = "session_ticket_keys"

    package var name: String
    package var epoch: Int64
    package var fingerprint: String
    package var version: UInt64

    enum CodingKeys: String, CodingKey {
      case name, kind, epoch, fingerprint, version
    }

    package init(name: String, epoch: Int64, fingerprint: String, version: UInt64) {
      self.name = name
      self.epoch = epoch
      self.fingerprint = fingerprint
      self.version = version
    }

    package init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      self.name = try container.decode(String.self, forKey: .name)
      self.epoch = try container.decode(Int64.self, forKey: .epoch)
      self.fingerprint = try container.decode(String.self, forKey: .fingerprint)
      self.version = try container.decode(UInt64.self, forKey: .version)
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(Self.kind, forKey: .kind)
      try container.encode(self.epoch, forKey: .epoch)
      try container.encode(self.fingerprint, forKey: .fingerprint)
      try container.encode(self.version, forKey: .version)
    }
  }
}
