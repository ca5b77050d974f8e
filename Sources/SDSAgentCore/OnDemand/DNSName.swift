/// A DNS host name as a TLS client sends it in SNI, validated: at most 253 bytes, labels of 1–63
/// letters, digits and hyphens (not at either end), not an IP address literal. Kept lowercased:
/// names compare without case, as in TLS.
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
  public let name: String

  public var description: String { self.name }

  public init(parsing text: String) throws(DNSNameError) {
    guard text.utf8.count <= 253 else { throw DNSNameError(text, "it is longer than 253 bytes") }
    // Before lowercasing, which maps some non-ASCII letters (the Kelvin sign) to ASCII ones.
    guard text.utf8.allSatisfy({ $0 < 0x80 }) else { throw DNSNameError(text, "it is not ASCII (use IDNA A-labels)") }
    let name = text.lowercased()
    let labels = name.split(separator: ".", omittingEmptySubsequences: false)
    guard labels.count >= 2 else { throw DNSNameError(text, "it has a single label; name a host in a domain") }
    for label in labels {
      guard (1...63).contains(label.utf8.count) else {
        throw DNSNameError(text, "each label is 1 to 63 bytes")
      }
      guard label.utf8.allSatisfy(Self.isLabelByte), label.first != "-", label.last != "-" else {
        throw DNSNameError(text, "labels hold letters, digits and inner hyphens only")
      }
    }
    guard labels.last!.contains(where: { !$0.isNumber }) else {
      throw DNSNameError(text, "it is an IP address, not a host name")
    }
    self.name = name
  }

  private static func isLabelByte(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
      || byte == UInt8(ascii: "-")
  }
}

/// Why a text is not a DNS host name; the text is cut short.
public struct DNSNameError: Error, Hashable, CustomStringConvertible {
  public let text: String
  public let reason: String

  init(_ text: String, _ reason: String) {
    self.text = BoundedText(text, limit: 64).description
    self.reason = reason
  }

  public var description: String { "\"\(self.text)\" is not a DNS host name: \(self.reason)" }
}

/// A name an on-demand certificate may be minted for: exactly `api.example.test`, or
/// `*.internal.example`, which matches one label in place of the star, as in TLS.
public struct DNSNamePattern: Sendable, Hashable, CustomStringConvertible {
  /// The name, or the suffix after `*.`.
  public let base: DNSName
  public let isWildcard: Bool

  public init(parsing text: String) throws(DNSNameError) {
    if text.hasPrefix("*.") {
      self.base = try DNSName(parsing: String(text.dropFirst(2)))
      self.isWildcard = true
    } else {
      self.base = try DNSName(parsing: text)
      self.isWildcard = false
    }
  }

  public var description: String { self.isWildcard ? "*.\(self.base)" : self.base.name }

  public func matches(_ name: DNSName) -> Bool {
    guard self.isWildcard else { return name == self.base }
    guard name.name.hasSuffix("." + self.base.name) else { return false }
    return !name.name.dropLast(self.base.name.utf8.count + 1).contains(".")
  }
}
