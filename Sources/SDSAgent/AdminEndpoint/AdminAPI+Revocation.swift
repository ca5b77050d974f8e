import Foundation

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
}
