import Foundation
import SDSAgentCore

/// The node's view in one document, as the admin endpoint's `GET /status` answers it and
/// `sds-agent status` shows it: every identity with its phase, the trust bundle and the
/// revocation lists served with it, where certificates come from, and the connected Envoys. Never key material, and no control
/// character: what clients and CAs sent is escaped (`escaped()`) when the status is made and
/// again when `sds-agent status` reads it, since it is shown on an operator's terminal.
package struct NodeStatus: Codable, Sendable {
  package struct Identity: Codable, Sendable {
    package internal(set) var identity: String
    package let pinned: Bool
    package internal(set) var phase: String
    /// Whether a valid certificate is served for it now.
    package let healthy: Bool
    package internal(set) var serial: String?
    package let notAfter: Date?
    package let nextRotation: Date?
    package internal(set) var lastError: String?
    package let retryAt: Date?
    package let streams: Int
  }

  package struct Root: Codable, Sendable {
    package internal(set) var subject: String
    package internal(set) var serial: String
    package let notAfter: Date
  }

  /// A revocation list served with the trust bundle; `issuerRoot` is the serial of the bundle's
  /// root that signed it.
  package struct RevocationList: Codable, Sendable {
    package internal(set) var issuer: String
    package internal(set) var issuerRoot: String?
    package let number: Int
    package let entries: Int
    package let thisUpdate: Date
    package let nextUpdate: Date
  }

  package struct Stream: Codable, Sendable {
    package let id: UInt64
    package internal(set) var nodeID: String?
    package internal(set) var identity: String?
    package internal(set) var resources: [String]
    package internal(set) var lastAckedVersion: String?
    package internal(set) var lastNackMessage: String?
    /// The RPC; nil from an agent that listed SDS streams only.
    package internal(set) var method: String?

    /// `nodeID` would not survive the snake-case conversion both ways as `node_id`.
    enum CodingKeys: String, CodingKey {
      case id, identity, resources, lastAckedVersion, lastNackMessage, method
      case nodeID = "nodeId"
    }

    /// A call of the SPIFFE Workload API rather than an Envoy's SDS stream.
    package var isWorkloadAPI: Bool {
      self.method.flatMap(StreamRegistry.Method.init(rawValue:))?.isWorkloadAPI ?? false
    }
  }

  /// Where certificates come from: `local CA` or the Istio-compatible CA's address.
  package internal(set) var certificateAuthority: String
  package internal(set) var identities: [Identity]
  package internal(set) var trustBundle: [Root]
  package internal(set) var revocationLists: [RevocationList]
  package internal(set) var streams: [Stream]

  enum CodingKeys: String, CodingKey {
    case certificateAuthority, identities, trustBundle, revocationLists, streams
  }

  /// Reads a status; one from an agent that predates revocation lists has none.
  package init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.certificateAuthority = try container.decode(String.self, forKey: .certificateAuthority)
    self.identities = try container.decode([Identity].self, forKey: .identities)
    self.trustBundle = try container.decode([Root].self, forKey: .trustBundle)
    self.revocationLists = try container.decodeIfPresent([RevocationList].self, forKey: .revocationLists) ?? []
    self.streams = try container.decode([Stream].self, forKey: .streams)
  }

  /// Healthy when every identity has a valid certificate.
  package var isHealthy: Bool { self.identities.allSatisfy(\.healthy) }

  package init(table: IdentityTable, streams: StreamRegistry, certificateAuthority: String, now: Date) {
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
    let roots = rows.first?.served.trustBundle?.roots ?? []
    self.trustBundle = roots.map {
      Root(subject: "\($0.subject)", serial: $0.serialHex, notAfter: $0.notValidAfter)
    }
    self.revocationLists = table.servedRevocationLists.map { list in
      RevocationList(
        issuer: "\(list.issuer)", issuerRoot: roots.first { list.isSigned(by: $0) }?.serialHex, number: list.number,
        entries: list.entries.count, thisUpdate: list.thisUpdate, nextUpdate: list.nextUpdate)
    }
    self.streams = streams.streams.map {
      Stream(
        id: $0.id, nodeID: $0.nodeID, identity: $0.identity, resources: $0.resources,
        lastAckedVersion: $0.lastAckedVersion, lastNackMessage: $0.lastNackMessage, method: $0.method.rawValue)
    }
    self = self.escaped()
  }

  /// The same status with every text field passed through `BoundedText.escaped`: nothing in it
  /// can end a line or steer a terminal.
  package func escaped() -> NodeStatus {
    let escape = BoundedText.escaped
    var status = self
    status.certificateAuthority = escape(status.certificateAuthority)
    for index in status.identities.indices {
      status.identities[index].identity = escape(status.identities[index].identity)
      status.identities[index].phase = escape(status.identities[index].phase)
      status.identities[index].serial = status.identities[index].serial.map(escape)
      status.identities[index].lastError = status.identities[index].lastError.map(escape)
    }
    for index in status.trustBundle.indices {
      status.trustBundle[index].subject = escape(status.trustBundle[index].subject)
      status.trustBundle[index].serial = escape(status.trustBundle[index].serial)
    }
    for index in status.revocationLists.indices {
      status.revocationLists[index].issuer = escape(status.revocationLists[index].issuer)
      status.revocationLists[index].issuerRoot = status.revocationLists[index].issuerRoot.map(escape)
    }
    for index in status.streams.indices {
      status.streams[index].nodeID = status.streams[index].nodeID.map(escape)
      status.streams[index].identity = status.streams[index].identity.map(escape)
      status.streams[index].resources = status.streams[index].resources.map(escape)
      status.streams[index].lastAckedVersion = status.streams[index].lastAckedVersion.map(escape)
      status.streams[index].lastNackMessage = status.streams[index].lastNackMessage.map(escape)
      status.streams[index].method = status.streams[index].method.map(escape)
    }
    return status
  }

  package static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return encoder
  }

  package static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}
