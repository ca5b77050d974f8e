import X509

/// A certificate's serial number as a number: the same value whether it was written with leading
/// zeros, in upper or lower case, or with `openssl x509 -serial`'s `serial=` prefix or colons.
package struct CertificateSerial: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
  /// Big-endian magnitude with no leading zero bytes (one zero byte for the value 0).
  package let magnitude: [UInt8]

  /// RFC 5280 §4.1.2.2: at most 20 octets.
  package static let maximumOctets = 20

  package init(_ serial: Certificate.SerialNumber) {
    self.init(magnitude: Array(serial.bytes))
  }

  private init(magnitude bytes: [UInt8]) {
    let trimmed = bytes.drop { $0 == 0 }
    self.magnitude = trimmed.isEmpty ? [0] : Array(trimmed)
  }

  /// Reads a DER INTEGER's contents; nil for a negative number or more than 20 octets.
  init?(integerContents contents: ArraySlice<UInt8>) {
    guard let first = contents.first, first & 0x80 == 0 else { return nil }
    self.init(magnitude: Array(contents))
    guard self.magnitude.count <= Self.maximumOctets else { return nil }
  }

  /// Parses hexadecimal text; nil when it is not a serial number (empty, other characters, or
  /// more than 20 octets once leading zeros are dropped).
  package init?(hex text: some StringProtocol) {
    var digits = Substring(text)
    if digits.lowercased().hasPrefix("serial=") { digits = digits.dropFirst(7) }
    if digits.lowercased().hasPrefix("0x") { digits = digits.dropFirst(2) }
    let nibbles = digits.filter { $0 != ":" }.map { $0.asciiValue.flatMap(Self.nibble) }
    guard !nibbles.isEmpty, nibbles.count <= 128, nibbles.allSatisfy({ $0 != nil }) else { return nil }
    var values = nibbles.map { $0! }
    if values.count % 2 == 1 { values.insert(0, at: 0) }
    let bytes = stride(from: 0, to: values.count, by: 2).map { values[$0] << 4 | values[$0 + 1] }
    self.init(magnitude: bytes)
    guard self.magnitude.count <= Self.maximumOctets else { return nil }
  }

  private static func nibble(_ ascii: UInt8) -> UInt8? {
    switch ascii {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return ascii - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return ascii - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return ascii - UInt8(ascii: "A") + 10
    default: return nil
    }
  }

  /// Lower-case hex, two digits per octet, no leading zero octets.
  package var description: String {
    self.magnitude.map { byte in
      let text = String(byte, radix: 16)
      return text.count == 1 ? "0" + text : text
    }.joined()
  }

  /// The contents of its DER INTEGER: a leading zero octet where the high bit is set.
  var integerContents: [UInt8] {
    self.magnitude[0] & 0x80 != 0 ? [0] + self.magnitude : self.magnitude
  }

  package static func < (lhs: Self, rhs: Self) -> Bool {
    lhs.magnitude.count != rhs.magnitude.count
      ? lhs.magnitude.count < rhs.magnitude.count : lhs.magnitude.lexicographicallyPrecedes(rhs.magnitude)
  }

  package init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let serial = Self(hex: text) else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: decoder.codingPath, debugDescription: "not a hexadecimal serial number"))
    }
    self = serial
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(self.description)
  }
}
