/// The audience of a `jwt-svid:<audience>` SDS secret: 1 to 255 visible ASCII characters (no
/// space, no control character), so that it is safe in a JWT's `aud`, a log line and a status.
package struct JWTAudience: Sendable, Hashable, Comparable, CustomStringConvertible {
  package let value: String

  /// The prefix of the SDS names that ask for a JWT-SVID.
  package static let namePrefix = "jwt-svid:"
  package static let maximumLength = 255

  /// nil if `value` is empty, longer than `maximumLength` bytes or has a byte that is not
  /// visible ASCII.
  package init?(_ value: String) {
    let bytes = value.utf8
    guard !bytes.isEmpty, bytes.count <= Self.maximumLength, bytes.allSatisfy({ (0x21...0x7E).contains($0) })
    else { return nil }
    self.value = value
  }

  /// The audience of a `jwt-svid:<audience>` name; nil for another name or an invalid audience.
  package init?(secretName name: String) {
    guard name.hasPrefix(Self.namePrefix) else { return nil }
    self.init(String(name.dropFirst(Self.namePrefix.count)))
  }

  /// Whether `name` asks for a JWT-SVID, whatever its audience.
  package static func isJWTSVIDName(_ name: String) -> Bool {
    name.hasPrefix(Self.namePrefix)
  }

  /// `jwt-svid:<audience>`.
  package var secretName: String { Self.namePrefix + self.value }

  package var description: String { self.value }

  package static func < (lhs: JWTAudience, rhs: JWTAudience) -> Bool { lhs.value < rhs.value }
}
