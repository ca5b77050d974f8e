import Foundation
import SDSAgentCore

/// The node's view in one document, as the admin endpoint's `GET /status` answers it and
/// `sds-agent status` shows it: every identity with its phase, the trust bundle, where
/// certificates come from, and the connected Envoys. Never key material.
public struct NodeStatus: Codable, Sendable {
  public struct Identity: Codable, Sendable {
    public let identity: String
    public let pinned: Bool
    public let phase: String
    /// Whether a valid certificate is served for it now.
    public let healthy: Bool
    public let serial: String?
    public let notAfter: Date?
    public let nextRotation: Date?
    public let lastError: String?
    public let retryAt: Date?
    public let streams: Int
  }

  public struct Root: Codable, Sendable {
    public let subject: String
    public let serial: String
    public let notAfter: Date
  }

  public struct Stream: Codable, Sendable {
    public let id: UInt64
    public let nodeID: String?
    public let identity: String?
    public let resources: [String]
    public let lastAckedVersion: String?
    public let lastNackMessage: String?

    /// `nodeID` would not survive the snake-case conversion both ways as `node_id`.
    enum CodingKeys: String, CodingKey {
      case id, identity, resources, lastAckedVersion, lastNackMessage
      case nodeID = "nodeId"
    }
  }

  /// Where certificates come from: `local CA` or the Istio-compatible CA's address.
  public let certificateAuthority: String
  public let identities: [Identity]
  public let trustBundle: [Root]
  public let streams: [Stream]

  /// Healthy when every identity has a valid certificate.
  public var isHealthy: Bool { self.identities.allSatisfy(\.healthy) }

  public init(table: IdentityTable, streams: StreamRegistry, certificateAuthority: String, now: Date) {
    let rows = table.snapshot()
    self.certificateAuthority = certificateAuthority
    self.identities = rows.map { row in
      var lastError: String?
      if case .failing(let failure) = row.phase { lastError = "\(failure.code.rawValue): \(failure.message)" }
      return Identity(
        identity: row.identity.description, pinned: row.isPinned, phase: row.phase.name,
        healthy: row.isServable(at: now), serial: row.served.svid?.leaf.serialHex,
        notAfter: row.served.svid?.notAfter, nextRotation: row.renewAt, lastError: lastError,
        retryAt: row.retryAt, streams: row.streams)
    }
    self.trustBundle = (rows.first?.served.trustBundle?.roots ?? []).map {
      Root(subject: "\($0.subject)", serial: $0.serialHex, notAfter: $0.notValidAfter)
    }
    self.streams = streams.streams.map {
      Stream(
        id: $0.id, nodeID: $0.nodeID, identity: $0.identity, resources: $0.resources,
        lastAckedVersion: $0.lastAckedVersion, lastNackMessage: $0.lastNackMessage)
    }
  }

  public static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return encoder
  }

  public static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}
