/// The kinds of served secrets one change moved: a stream none of whose secrets is of these
/// kinds is not woken (a certificate rotation does not wake the `ROOTCA` streams).
package struct SecretChanges: OptionSet, Sendable, Hashable {
  package let rawValue: UInt16

  package init(rawValue: UInt16) {
    self.rawValue = rawValue
  }

  package static let svid = SecretChanges(rawValue: 1 << 0)
  /// The own trust domain's bundle (and the revocation lists served with it).
  package static let trustBundle = SecretChanges(rawValue: 1 << 1)
  /// The federated bundles.
  package static let federation = SecretChanges(rawValue: 1 << 2)
  package static let jwtSVIDs = SecretChanges(rawValue: 1 << 3)
  package static let files = SecretChanges(rawValue: 1 << 4)
  package static let onDemand = SecretChanges(rawValue: 1 << 5)
  package static let jwtBundles = SecretChanges(rawValue: 1 << 6)
  package static let sessionTicketKeys = SecretChanges(rawValue: 1 << 7)
  package static let all: SecretChanges = [
    .svid, .trustBundle, .federation, .jwtSVIDs, .files, .onDemand, .jwtBundles, .sessionTicketKeys,
  ]

  /// `kind` if `before` and `after` differ.
  static func kind(_ kind: SecretChanges, from before: UInt64, to after: UInt64) -> SecretChanges {
    before == after ? [] : kind
  }
}

extension SecretResource {
  /// The changes that move this resource's revision (`ServedSecrets.revision(of:)`).
  package var changes: SecretChanges {
    switch self {
    case .tlsCertificate: return .svid
    case .validationContext: return .trustBundle
    case .allTrustDomains, .trustDomain: return [.trustBundle, .federation]
    case .onDemand: return .onDemand
    case .refused: return []
    case .file: return .files
    case .jwtSVID: return .jwtSVIDs
    case .sessionTicketKeys: return .sessionTicketKeys
    }
  }
}
