import SDSAgentCore

/// The files of a generic secret: one whose bytes are the secret (`generic=FILE`), or one per key
/// of Envoy's multi-key `GenericSecret.secrets` (`generic.KEY=FILE`, `generic: {KEY: FILE}` in YAML).
package enum GenericSecretFiles: Sendable, Hashable, CustomStringConvertible {
  case single(String)
  /// Sorted by key.
  case keyed([KeyFile])

  package struct KeyFile: Sendable, Hashable {
    package let key: String
    package let path: String
  }

  static let keyPrefix = "generic."
  /// The most keys one secret may have.
  static let maximumKeys = 64
  /// The longest key, in bytes.
  static let maximumKeyLength = 128

  package var paths: [String] {
    switch self {
    case .single(let path): [path]
    case .keyed(let files): files.map(\.path)
    }
  }

  package var description: String {
    switch self {
    case .single(let path): "generic=\(path)"
    case .keyed(let files): files.map { "\(Self.keyPrefix)\($0.key)=\($0.path)" }.joined(separator: ",")
    }
  }

  /// The generic files among a secret's fields, or nil when it names none; refuses a secret that
  /// mixes them with a certificate's or a validation context's files, or `generic` with `generic.KEY`.
  init?(fields: [String: String], secret name: String) throws(ConfigurationError) {
    let keyed = fields.filter { $0.key.hasPrefix(Self.keyPrefix) }
    guard fields["generic"] != nil || !keyed.isEmpty else { return nil }
    let others = ["cert", "key", "ocsp-staple", "ca", "crl"].filter { fields[$0] != nil }
    guard others.isEmpty else {
      throw ConfigurationError(
        key: "secret", value: name,
        allowed: "generic files alone: a generic secret has no \(others.joined(separator: ", "))")
    }
    if let path = fields["generic"] {
      guard keyed.isEmpty else {
        throw ConfigurationError(
          key: "secret", value: name, allowed: "either generic=FILE or generic.KEY=FILE for each key, not both")
      }
      self = .single(path)
      return
    }
    guard keyed.count <= Self.maximumKeys else {
      throw ConfigurationError(
        key: "secret", value: name, allowed: "at most \(Self.maximumKeys) keys (it has \(keyed.count))")
    }
    var files: [KeyFile] = []
    for (field, path) in keyed.sorted(by: { $0.key < $1.key }) {
      let key = String(field.dropFirst(Self.keyPrefix.count))
      guard Self.isKey(key) else {
        throw ConfigurationError(
          key: "secret", value: "\(BoundedText(field, limit: 60))",
          allowed: "a key of 1 to \(Self.maximumKeyLength) letters, digits, '.', '_' or '-'")
      }
      files.append(KeyFile(key: key, path: path))
    }
    self = .keyed(files)
  }

  private static func isKey(_ key: String) -> Bool {
    !key.isEmpty && key.utf8.count <= Self.maximumKeyLength
      && key.utf8.allSatisfy { byte in
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
          || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
          || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
      }
  }
}
