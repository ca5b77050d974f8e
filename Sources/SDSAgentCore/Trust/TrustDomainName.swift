/// A trust domain's name, bare (`other.example`), validated at construction by the SPIFFE ID
/// rules: what `--trust-bundle spiffe://other.example=/path` names, and what Envoy's SPIFFE
/// validator expects in `TrustDomain.name` (without `spiffe://`).
package struct TrustDomainName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The trust domain without scheme or path.
  package let name: String

  package var description: String { self.name }

  /// Accepts `spiffe://other.example` or `other.example`; refuses a path, a port, uppercase and
  /// anything else a SPIFFE ID's trust domain may not hold.
  package init(parsing text: String) throws(TrustDomainNameError) {
    let scheme = "spiffe://"
    let id: SPIFFEID
    do {
      id = try SPIFFEID(parsing: text.hasPrefix(scheme) ? text : scheme + text)
    } catch {
      throw TrustDomainNameError(text, error.reason)
    }
    guard id.path.isEmpty else {
      throw TrustDomainNameError(
        text, "a trust domain has no path: write spiffe://\(id.trustDomain) or \(id.trustDomain)")
    }
    self.name = id.trustDomain
  }

  /// The trust domain of `id`.
  package init(of id: SPIFFEID) {
    self.name = id.trustDomain
  }

  package static func < (lhs: Self, rhs: Self) -> Bool {
    lhs.name < rhs.name
  }
}

/// Why a text is not a trust domain name.
package struct TrustDomainNameError: AgentFailure, Hashable {
  package enum Code: String, Sendable {
    case notATrustDomain = "not_a_trust_domain"
  }

  package var code: Code { .notATrustDomain }
  package var message: String { self.description }
  /// The text, cut short if it was long.
  package let text: String
  package let reason: String

  init(_ text: String, _ reason: String) {
    self.text = BoundedText(text, limit: Self.shownLength).description
    self.reason = reason
  }

  static let shownLength = 256

  package var description: String {
    "\"\(self.text)\" is not a trust domain (expected other.example or spiffe://other.example): \(self.reason)"
  }
}
