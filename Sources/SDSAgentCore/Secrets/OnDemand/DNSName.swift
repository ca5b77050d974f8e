/// A DNS host name as a TLS client sends it in SNI, validated: at most 253 bytes, labels of 1–63
/// letters, digits and hyphens (not at either end), not an IP address literal. Kept lowercased:
/// names compare without case, as in TLS. Only ASCII is accepted, and that is checked before the
/// case is folded: Unicode folding maps other letters onto ASCII ones (KELVIN SIGN to `k`), and
/// Swift compares canonically equivalent strings as equal; an internationalized name is written in
/// its `xn--` form.
package struct DNSName: Sendable, Hashable, CustomStringConvertible {
  package let name: String

  package var description: String { self.name }

  package init(parsing text: String) throws(DNSNameError) {
    guard text.utf8.count <= 253 else { throw DNSNameError(text, "it is longer than 253 bytes") }
    guard text.utf8.allSatisfy({ $0 < 0x80 }) else { throw DNSNameError.notASCII(text) }
    let name = String(decoding: text.utf8.map(Self.lowercased), as: UTF8.self)
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

  /// An ASCII byte lowercased; nothing else is folded.
  static func lowercased(_ byte: UInt8) -> UInt8 {
    (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
  }

  private static func isLabelByte(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
      || byte == UInt8(ascii: "-")
  }
}

/// Why a text is not a DNS host name; the text is cut short.
package struct DNSNameError: AgentFailure, Hashable {
  package enum Code: String, Sendable {
    case notADNSName = "not_a_dns_name"
  }

  package var code: Code { .notADNSName }
  package var message: String { self.description }
  package let text: String
  package let reason: String

  init(_ text: String, _ reason: String) {
    self.text = BoundedText(text, limit: 64).description
    self.reason = reason
  }

  package var description: String { "\"\(self.text)\" is not a DNS host name: \(self.reason)" }

  static func notASCII(_ text: String) -> Self {
    Self(text, "it holds characters that are not ASCII; write an internationalized name in its xn-- form")
  }
}

/// A name an on-demand certificate may be minted for: exactly `api.example.test`, or
/// `*.internal.example`, which matches one label in place of the star, as in TLS.
package struct DNSNamePattern: Sendable, Hashable, CustomStringConvertible {
  /// The name, or the suffix after `*.`.
  package let base: DNSName
  package let isWildcard: Bool

  package init(parsing text: String) throws(DNSNameError) {
    guard text.utf8.allSatisfy({ $0 < 0x80 }) else { throw DNSNameError.notASCII(text) }
    if text.hasPrefix("*.") {
      self.base = try DNSName(parsing: String(text.dropFirst(2)))
      self.isWildcard = true
    } else {
      self.base = try DNSName(parsing: text)
      self.isWildcard = false
    }
  }

  package var description: String { self.isWildcard ? "*.\(self.base)" : self.base.name }

  /// Compares bytes: both names are lowercased ASCII.
  package func matches(_ name: DNSName) -> Bool {
    let text = name.name.utf8
    let base = self.base.name.utf8
    guard self.isWildcard else { return text.elementsEqual(base) }
    guard text.count > base.count + 1, text.suffix(base.count).elementsEqual(base) else { return false }
    let label = text.dropLast(base.count)
    return label.last == UInt8(ascii: ".") && !label.dropLast().contains(UInt8(ascii: "."))
  }
}
