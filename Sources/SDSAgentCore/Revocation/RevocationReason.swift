/// Why a certificate was revoked: RFC 5280 §5.3.1's CRLReason, by the names operators type.
package enum RevocationReason: String, Sendable, Hashable, Codable, CaseIterable {
  case unspecified
  case keyCompromise = "key-compromise"
  case caCompromise = "ca-compromise"
  case affiliationChanged = "affiliation-changed"
  case superseded
  case cessationOfOperation = "cessation-of-operation"
  case privilegeWithdrawn = "privilege-withdrawn"

  /// The CRLReason ENUMERATED value.
  var code: Int {
    switch self {
    case .unspecified: 0
    case .keyCompromise: 1
    case .caCompromise: 2
    case .affiliationChanged: 3
    case .superseded: 4
    case .cessationOfOperation: 5
    case .privilegeWithdrawn: 9
    }
  }

  /// Accepts the names above and openssl's camel-case spellings (`keyCompromise`).
  package init?(name: String) {
    let folded = name.filter { $0 != "-" && $0 != "_" }.lowercased()
    guard let reason = Self.allCases.first(where: { $0.rawValue.filter { $0 != "-" } == folded }) else { return nil }
    self = reason
  }
}
