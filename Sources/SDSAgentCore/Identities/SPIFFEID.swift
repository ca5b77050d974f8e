/// A SPIFFE ID (`spiffe://<trust-domain>/<path>`), validated at construction.
///
/// Follows the SPIFFE ID specification: lowercase trust domain of letters, digits, `.`, `-`, `_`;
/// a path of non-empty segments of letters, digits, `.`, `-`, `_` that are not `.` or `..`; no
/// query, fragment, port or user info; at most 2048 bytes in all, the trust domain at most 255.
package struct SPIFFEID: Sendable, Hashable, CustomStringConvertible {
  /// The longest SPIFFE ID in bytes, scheme included (SPIFFE ID specification, 2.3).
  package static let maximumLength = 2048
  /// The longest trust domain in bytes (SPIFFE ID specification, 2.1).
  package static let maximumTrustDomainLength = 255

  package let trustDomain: String
  /// The path including its leading `/`, or empty.
  package let path: String

  package var description: String { "spiffe://\(self.trustDomain)\(self.path)" }

  package init(parsing text: String) throws(SPIFFEIDError) {
    let scheme = "spiffe://"
    // Before anything else looks at the text: a huge value costs no more than a short one.
    guard text.utf8.count <= Self.maximumLength else {
      throw SPIFFEIDError(text, "it is \(text.utf8.count) bytes; a SPIFFE ID is at most \(Self.maximumLength)")
    }
    // ASCII before the text is compared with anything: Swift compares canonically equivalent
    // strings as equal (KELVIN SIGN equals `K`), and no SPIFFE ID holds anything else.
    guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
      throw SPIFFEIDError(text, "it holds characters that are not ASCII; a SPIFFE ID is ASCII")
    }
    guard text.hasPrefix(scheme) else {
      throw SPIFFEIDError(text, "must start with \"spiffe://\"")
    }
    let rest = text.dropFirst(scheme.count)
    let slash = rest.firstIndex(of: "/")
    let domain = String(rest[..<(slash ?? rest.endIndex)])
    let path = slash.map { String(rest[$0...]) } ?? ""
    try self.init(trustDomain: domain, path: path, original: text)
  }

  package init(trustDomain: String, path: String) throws(SPIFFEIDError) {
    try self.init(trustDomain: trustDomain, path: path, original: "spiffe://\(trustDomain)\(path)")
  }

  /// The Istio convention for a Kubernetes service account: `spiffe://<td>/ns/<ns>/sa/<sa>`.
  package init(trustDomain: String, namespace: String, serviceAccount: String) throws(SPIFFEIDError) {
    try self.init(trustDomain: trustDomain, path: "/ns/\(namespace)/sa/\(serviceAccount)")
  }

  private init(trustDomain: String, path: String, original: String) throws(SPIFFEIDError) {
    guard original.utf8.count <= Self.maximumLength else {
      throw SPIFFEIDError(
        original, "it is \(original.utf8.count) bytes; a SPIFFE ID is at most \(Self.maximumLength)")
    }
    guard !trustDomain.isEmpty else { throw SPIFFEIDError(original, "the trust domain is empty") }
    guard trustDomain.utf8.count <= Self.maximumTrustDomainLength else {
      throw SPIFFEIDError(
        original,
        "the trust domain is \(trustDomain.utf8.count) bytes; it may be at most \(Self.maximumTrustDomainLength)")
    }
    guard trustDomain.utf8.allSatisfy(Self.isTrustDomainByte) else {
      throw SPIFFEIDError(
        original,
        "the trust domain may contain only lowercase letters, digits, '.', '-' and '_'"
      )
    }
    if !path.isEmpty {
      guard path.hasPrefix("/") else { throw SPIFFEIDError(original, "the path must start with '/'") }
      for segment in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
        guard !segment.isEmpty else { throw SPIFFEIDError(original, "the path has an empty segment") }
        guard segment != ".", segment != ".." else {
          throw SPIFFEIDError(original, "the path may not contain '.' or '..' segments")
        }
        guard segment.utf8.allSatisfy(Self.isPathByte) else {
          throw SPIFFEIDError(
            original,
            "path segments may contain only letters, digits, '.', '-' and '_'"
          )
        }
      }
    }
    self.trustDomain = trustDomain
    self.path = path
  }

  private static func isTrustDomainByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
      UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
      return true
    default:
      return false
    }
  }

  private static func isPathByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return true
    default: return self.isTrustDomainByte(byte)
    }
  }
}

/// Why a text is not a SPIFFE ID.
package struct SPIFFEIDError: AgentFailure, Hashable {
  package enum Code: String, Sendable {
    case notASPIFFEID = "not_a_spiffe_id"
  }

  package var code: Code { .notASPIFFEID }
  package var message: String { self.description }
  /// The text, cut short if it was long.
  package let text: String
  package let reason: String

  init(_ text: String, _ reason: String) {
    self.text = BoundedText(text, limit: Self.shownLength).description
    self.reason = reason
  }

  static let shownLength = 256

  package var description: String { "\"\(self.text)\" is not a SPIFFE ID: \(self.reason)" }
}
