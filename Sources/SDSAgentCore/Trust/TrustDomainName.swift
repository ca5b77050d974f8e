/// A trust domain's name, bare (`other.example`), validated at construction by the SPIFFE ID
/// rules: what `--trust-bundle spiffe://other.example=/path` names, and what Envoy's SPIFFE
/// validator expects in `TrustDomain.name` (without `spiffe://`).
public struct TrustDomainName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The trust domain without scheme or path.
  public let name: String

  public var description: String { self.name }

  /// Accepts `spiffe://other.example` or `other.example`; refuses a path, a port, uppercase and
  /// anything else a SPIFFE ID's trust domain may not hold.
  public init(parsing text: String) throws(TrustDomainNameError) {
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
  public init(of id: SPIFFEID) {
    self.name = id.trustDomain
  }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    lhs.name < rhs.name
  }
}

/// Why a text is not a trust domain name.
public struct TrustDomainNameError: AgentFailure, Hashable {
  public enum Code: String, Sendable {
    case notATrustDomain = "not_a_trust_domain"
  }

  public var code: Code { .notATrustDomain }
  public var message: String { self.description }
  /// The text, cut short if it was long.
  public let text: String
  public let reason: String

  init(_ text: String, _ reason: String) {
    self.text = BoundedText(text, limit: Self.shownLength).description
    self.reason = reason
  }

  static let shownLength = 256

  public var description: String {
    "\"\(self.text)\" is not a trust domain (expected other.example or spiffe://other.example): \(self.reason)"
  }
}
