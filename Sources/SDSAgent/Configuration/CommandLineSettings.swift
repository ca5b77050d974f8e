import SDSAgentCore

/// Reads a command's arguments against its settings' declarations: `--key value`,
/// `--key=value`, repeatable keys given again, and boolean flags alone (`--key`, or
/// `--key=false`). Anything else is an error naming the argument and what is allowed.
package enum CommandLineSettings {
  package static func parse(
    _ arguments: [String],
    declarations: [SettingDeclaration]
  ) throws(ConfigurationError) -> [String: [String]] {
    let byKey = Dictionary(declarations.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
    var flags: [String: [String]] = [:]
    var rest = arguments[...]
    while let argument = rest.popFirst() {
      guard argument.hasPrefix("--"), argument.count > 2 else {
        throw ConfigurationError(
          key: "argument", value: argument, allowed: "options such as --cert-ttl 1h (see --help); there are no others")
      }
      let option = argument.dropFirst(2)
      let name = String(option.prefix { $0 != "=" })
      let inline = option.firstIndex(of: "=").map { String(option[option.index(after: $0)...]) }
      guard let declaration = byKey[name], declaration.sources.contains(.flag) else {
        throw ConfigurationError(
          key: "option", value: "--\(name)",
          allowed: Self.known(
            name, among: declarations.filter { $0.sources.contains(.flag) }.map(\.key), noun: "option", prefix: "--"))
      }
      let value: String
      if let inline {
        value = inline
      } else if declaration.kind == .flag {
        value = "true"
      } else if let next = rest.first, !next.hasPrefix("--") {
        value = next
        rest = rest.dropFirst()
      } else {
        throw ConfigurationError(
          key: name, value: "", allowed: "a value after --\(name): \(declaration.allowed)")
      }
      if !declaration.kind.isRepeatable, let first = flags[name]?.first {
        throw Self.repeated(name, first: first, again: value)
      }
      flags[name, default: []].append(value)
    }
    return flags
  }

  /// A single-value option given twice: which one was meant is the operator's call, not ours.
  package static func repeated(_ name: String, first: String, again: String) -> ConfigurationError {
    ConfigurationError(
      key: name,
      value: "\(BoundedText(Self.withoutPassword(first), limit: 128)) and again "
        + "\(BoundedText(Self.withoutPassword(again), limit: 128))",
      allowed: "--\(name) once: it takes one value and is not repeatable")
  }

  /// A URL's password (`scheme://user:password@host`) masked, so a refusal never echoes it.
  static func withoutPassword(_ value: String) -> String {
    guard let scheme = value.range(of: "://"), let at = value[scheme.upperBound...].firstIndex(of: "@"),
      let colon = value[scheme.upperBound..<at].firstIndex(of: ":")
    else { return value }
    return String(value[..<value.index(after: colon)]) + "***" + String(value[at...])
  }

  /// "a known key: …", and the known key a typo most likely meant.
  package static func known(_ key: String, among keys: [String], noun: String = "key", prefix: String = "") -> String {
    let list = keys.map { prefix + $0 }.joined(separator: ", ")
    let best = keys.map { (key: $0, distance: Self.distance($0, key)) }.min { $0.distance < $1.distance }
    guard let best, best.distance <= 2 else { return "a known \(noun): \(list)" }
    return "a known \(noun) (did you mean \(prefix)\(best.key)?): \(list)"
  }

  /// Levenshtein distance, for suggesting the key a typo meant.
  static func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
      var current = [i + 1]
      for (j, y) in b.enumerated() {
        current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
      }
      previous = current
    }
    return previous[b.count]
  }
}
