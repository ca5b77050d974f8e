import Foundation
import SDSAgentCore

extension AdminAPI {
  /// One entry of `GET /debug/secrets`: an identity's certificate, a trust bundle, an
  /// on-demand server certificate (`"kind": "on_demand"`) or a JWT-SVID an SDS stream holds
  /// (`"kind": "jwt_svid"`). Metadata only, never key material or a token.
  package enum Secret: Codable, Sendable, Equatable {
    case certificate(Certificate)
    case validationContext(ValidationContext)
    case onDemand(OnDemand)
    case jwtSVID(JWTSVID)
    case sessionTicketKeys(SessionTicketKeys)

    private enum Shape: String, CodingKey {
      case kind, roots
    }

    package init(from decoder: any Decoder) throws {
      let shape = try decoder.container(keyedBy: Shape.self)
      let kind = try shape.decodeIfPresent(String.self, forKey: .kind)
      if kind == OnDemand.kind {
        self = .onDemand(try OnDemand(from: decoder))
      } else if kind == JWTSVID.kind {
        self = .jwtSVID(try JWTSVID(from: decoder))
      } else if kind == SessionTicketKeys.kind {
        self = .sessionTicketKeys(try SessionTicketKeys(from: decoder))
      } else if shape.contains(.roots) {
        self = .validationContext(try ValidationContext(from: decoder))
      } else {
        self = .certificate(try Certificate(from: decoder))
      }
    }

    package func encode(to encoder: any Encoder) throws {
      switch self {
      case .certificate(let certificate): try certificate.encode(to: encoder)
      case .validationContext(let bundle): try bundle.encode(to: encoder)
      case .onDemand(let onDemand): try onDemand.encode(to: encoder)
      case .jwtSVID(let token): try token.encode(to: encoder)
      case .sessionTicketKeys(let keys): try keys.encode(to: encoder)
      }
    }

    /// The secret's resource name.
    package var name: String {
      switch self {
      case .certificate(let certificate): certificate.name
      case .validationContext(let bundle): bundle.name
      case .onDemand(let onDemand): onDemand.name
      case .jwtSVID(let token): token.name
      case .sessionTicketKeys(let keys): keys.name
      }
    }
  }
}

extension AdminAPI.Secret {
  /// An identity's certificate, or its phase while it has none. `lastError` and `retryAt` are
  /// listed only while the identity is failing; the certificate's fields only once it has one.
  package struct Certificate: Codable, Sendable, Equatable {
    package var name: String
    package var identity: String
    package var phase: String
    package var streams: Int
    package var nextRotation: Date?
    package var version: UInt64
    package var lastError: String?
    package var retryAt: Date?
    package var serial: String?
    package var notBefore: Date?
    package var notAfter: Date?
    package var chainLength: Int?

    enum CodingKeys: String, CodingKey {
      case name, identity, phase, streams, version, serial
      case nextRotation = "next_rotation"
      case lastError = "last_error"
      case retryAt = "retry_at"
      case notBefore = "not_before"
      case notAfter = "not_after"
      case chainLength = "chain_length"
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(self.identity, forKey: .identity)
      try container.encode(self.phase, forKey: .phase)
      try container.encode(self.streams, forKey: .streams)
      try container.encode(self.nextRotation, forKey: .nextRotation)
      try container.encode(self.version, forKey: .version)
      if let lastError = self.lastError {
        try container.encode(lastError, forKey: .lastError)
        try container.encode(self.retryAt, forKey: .retryAt)
      }
      try container.encodeIfPresent(self.serial, forKey: .serial)
      try container.encodeIfPresent(self.notBefore, forKey: .notBefore)
      try container.encodeIfPresent(self.notAfter, forKey: .notAfter)
      try container.encodeIfPresent(self.chainLength, forKey: .chainLength)
    }
  }

  /// A trust bundle (`ROOTCA`): the agent's own identity's, and any identity's that differs.
  package struct ValidationContext: Codable, Sendable, Equatable {
    package var name: String
    package var roots: [AdminAPI.Root]
    package var version: UInt64
  }

  /// An on-demand server certificate; `null` fields until it is issued, held or failed.
  package struct OnDemand: Codable, Sendable, Equatable {
    static let kind = "on_demand"

    package var name: String
    package var holders: Int
    package var serial: String?
    package var notAfter: Date?
    package var idleSince: Date?
    package var lastError: String?

    enum CodingKeys: String, CodingKey {
      case name, kind, holders, serial
      case notAfter = "not_after"
      case idleSince = "idle_since"
      case lastError = "last_error"
    }

    package init(
      name: String, holders: Int, serial: String?, notAfter: Date?, idleSince: Date?, lastError: String?
    ) {
      self.name = name
      self.holders = holders
      self.serial = serial
      self.notAfter = notAfter
      self.idleSince = idleSince
      self.lastError = lastError
    }

    package init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      self.name = try container.decode(String.self, forKey: .name)
      self.holders = try container.decode(Int.self, forKey: .holders)
      self.serial = try container.decodeIfPresent(String.self, forKey: .serial)
      self.notAfter = try container.decodeIfPresent(Date.self, forKey: .notAfter)
      self.idleSince = try container.decodeIfPresent(Date.self, forKey: .idleSince)
      self.lastError = try container.decodeIfPresent(String.self, forKey: .lastError)
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.name, forKey: .name)
      try container.encode(Self.kind, forKey: .kind)
      try container.encode(self.holders, forKey: .holders)
      try container.encode(self.serial, forKey: .serial)
      try container.encode(self.notAfter, forKey: .notAfter)
      try container.encode(self.idleSince, forKey: .idleSince)
      try container.encode(self.lastError, forKey: .lastError)
    }
  }
}
