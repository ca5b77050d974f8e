import Foundation
import SDSAgentCore
import X509

extension AdminAPI {
  /// `POST /ca/revoke`: the serials revoked now (hex, as `openssl x509 -serial` prints them, in
  /// lower case), why, and the identities re-issued with a new key.
  package struct Revoked: Codable, Sendable, Equatable {
    package var serials: [String]
    package var reason: String
    package var reissued: [String]

    package init(serials: [String], reason: String, reissued: [String]) {
      self.serials = serials
      self.reason = reason
      self.reissued = reissued
    }
  }

  /// A revocation list served in the own trust domain's validation contexts, as `/debug/trust`
  /// lists it: its issuer, the root of the bundle whose key signed it (`null` when none does),
  /// its CRL number, how many certificates it revokes, and its validity.
  package struct RevocationList: Codable, Sendable, Equatable {
    package var issuer: String
    package var issuerRoot: String?
    package var number: Int
    package var entries: Int
    package var thisUpdate: Date
    package var nextUpdate: Date

    enum CodingKeys: String, CodingKey {
      case issuer, number, entries
      case issuerRoot = "issuer_root"
      case thisUpdate = "this_update"
      case nextUpdate = "next_update"
    }

    package init(_ list: CertificateRevocationList, roots: [Certificate]) {
      self.issuer = "\(list.issuer)"
      self.issuerRoot = roots.first { list.isSigned(by: $0) }?.serialHex
      self.number = list.number
      self.entries = list.entries.count
      self.thisUpdate = list.thisUpdate
      self.nextUpdate = list.nextUpdate
    }

    package func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(self.issuer, forKey: .issuer)
      try container.encode(self.issuerRoot, forKey: .issuerRoot)
      try container.encode(self.number, forKey: .number)
      try container.encode(self.entries, forKey: .entries)
      try container.encode(self.thisUpdate, forKey: .thisUpdate)
      try container.encode(self.nextUpdate, forKey: .nextUpdate)
    }
  }
}
