/// Text from a client or a file cut to a bounded length before it goes into a status message,
/// a log line or a metric: `abc…(+1234 characters)`, its control characters escaped
/// (`BoundedText.escaped(_:)`).
package struct BoundedText: Sendable, CustomStringConvertible {
  package let text: String
  package let limit: Int

  package init(_ text: String, limit: Int = BoundedText.defaultLimit) {
    self.text = text
    self.limit = limit
  }

  package static let defaultLimit = 128

  package var description: String {
    guard self.text.count > self.limit else { return Self.escaped(self.text) }
    return "\(Self.escaped(String(self.text.prefix(self.limit))))…(+\(self.text.count - self.limit) characters)"
  }

  /// `text` with every character that could end a line or steer a terminal written out as an
  /// escape: `\n`, `\r`, `\t`, and `\u{1B}` for the other control characters (C0, DEL, C1), the
  /// line and paragraph separators and the bidirectional overrides. Every sink of client-supplied
  /// text (the log handler, `sds-agent status`, the admin endpoint's views) passes it through
  /// here, so a resource name with a newline cannot forge a log entry and a node id with ESC
  /// cannot drive an operator's terminal. A backslash is kept, so escaping twice changes nothing.
  package static func escaped(_ text: String) -> String {
    // Printable ASCII, by far the common case, is returned as it is.
    guard text.utf8.contains(where: { $0 < 0x20 || $0 >= 0x7F }) else { return text }
    guard text.unicodeScalars.contains(where: Self.needsEscape) else { return text }
    var escaped = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      guard Self.needsEscape(scalar) else {
        escaped.append(scalar)
        continue
      }
      let written: String
      switch scalar {
      case "\n": written = "\\n"
      case "\r": written = "\\r"
      case "\t": written = "\\t"
      default: written = "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
      }
      escaped.append(contentsOf: written.unicodeScalars)
    }
    return String(escaped)
  }

  private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F: true  // C0, DEL, C1 (0x9B is a CSI on some terminals)
    case 0x2028, 0x2029: true  // line and paragraph separators
    case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional controls
    default: false
    }
  }
}
