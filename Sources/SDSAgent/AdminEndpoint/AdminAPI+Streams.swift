import Foundation
import SDSAgentCore

extension AdminAPI {
  /// A stream as `GET /debug/streams` lists it; what the client sent is shown escaped. `method`
  /// is the RPC (`StreamSecrets`, `DeltaSecrets`, or a Workload API method such as
  /// `FetchX509SVID`); absent from agents that listed SDS streams only.
  package struct Stream: Codable, Sendable, Equatable {
    package var id: UInt64
    package var method: String?
    package var nodeID: String?
    package var identity: String?
    package var resources: [String]
    package var openedAt: Date
    package var lastSentVersion: String?
    package var lastAckedVersion: String?
    package var lastNackedNonce: String?
    package var lastNackMessage: String?

    enum CodingKeys: String, CodingKey {
      case id, identity, resources, method
      case nodeID = "node_id"
      case openedAt = "opened_at"
      case lastSentVersion = "last_sent_version"
      case lastAckedVersion = "last_acked_version"
      case lastNackedNonce = "last_nacked_nonce"
      case lastNackMessage = "last_nack_message"
    }

    package init(_ stream: StreamRegistry.Stream) {
      self.id = stream.id
      self.method = stream.method.rawValue
      self.nodeID = stream.nodeID.map(BoundedText.escaped)
      self.identity = stream.identity.map(BoundedText.escaped)
      self.resources = stream.resources.map(BoundedText.escaped)
      self.openedAt = stream.openedAt
      self.lastSentVersion = stream.lastSentVersion.map(BoundedText.escaped)
      self.lastAckedVersion = stream.lastAckedVersion.map(BoundedText.escaped)
      self.lastNackedNonce = stream.lastNackedNonce.map(BoundedText.escaped)
      self.lastNackMessage = stream.lastNackMessage.map(BoundedText.escaped)
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.id, forKey: .id)
      try container.encodeIfPresent(self.method, forKey: .method)
      try container.encode(self.nodeID, forKey: .nodeID)
      try container.encode(self.identity, forKey: .identity)
      try container.encode(self.resources, forKey: .resources)
      try container.encode(self.openedAt, forKey: .openedAt)
      try container.encode(self.lastSentVersion, forKey: .lastSentVersion)
      try container.encode(self.lastAckedVersion, forKey: .lastAckedVersion)
      try container.encode(self.lastNackedNonce, forKey: .lastNackedNonce)
      try container.encode(self.lastNackMessage, forKey: .lastNackMessage)
    }
  }
}
