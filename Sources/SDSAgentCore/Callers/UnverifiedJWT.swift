import Foundation

/// The claims of a JWT read without checking its signature — only for what the token says about
/// its own holder (the agent's own token names its identity). Never use it to authenticate.
package struct UnverifiedJWT: Sendable {
  package let subject: String?
  package let expiresAt: Date?

  package init(_ token: String) throws(CertificateAuthorityError) {
    let parts = token.trimmingCharacters(in: .whitespacesAndNewlines).split(
      separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let payload = Self.base64URLDecode(parts[1]),
      let claims = try? JSONDecoder().decode(Claims.self, from: payload)
    else {
      throw CertificateAuthorityError(.refused, "the token is not a JWT (expected three base64url parts)")
    }
    self.subject = claims.subject
    self.expiresAt = claims.expiresAt.map { Date(timeIntervalSince1970: $0) }
  }

  /// The claims read: a JSON object, whose `sub` and `exp` count only when they have their
  /// types (a string; a number of seconds).
  private struct Claims: Decodable {
    let subject: String?
    let expiresAt: Double?

    enum CodingKeys: String, CodingKey {
      case subject = "sub"
      case expiresAt = "exp"
    }

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      self.subject = try? container.decodeIfPresent(String.self, forKey: .subject)
      self.expiresAt = try? container.decodeIfPresent(Double.self, forKey: .expiresAt)
    }
  }

  static func base64URLDecode(_ text: Substring) -> Data? {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    return Data(base64Encoded: base64)
  }
}
