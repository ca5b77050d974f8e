import Foundation
import SDSAgentCore
import Yams

/// The YAML config file: a flat mapping whose keys are the flag names of `run`
/// (`cert-ttl: 24h`). Each value must have its setting's shape: a plain value for a single key,
/// a list (or the mapping its declaration allows) for a repeatable one. Unknown keys are errors,
/// so a typo never silently falls back to a default.
package enum ConfigFile {
  package static func load(
    path: String,
    declarations: [SettingDeclaration]
  ) throws(ConfigurationError) -> [String: [String]] {
    guard let file = FileHandle(forReadingAtPath: path) else {
      throw ConfigurationError(key: "config", value: path, allowed: "a readable YAML file")
    }
    defer { try? file.close() }
    // One byte more than allowed tells a file at the limit from a larger one, without reading it all.
    guard let data = try? file.read(upToCount: Self.maximumSize + 1) ?? Data() else {
      throw ConfigurationError(key: "config", value: path, allowed: "a readable YAML file")
    }
    guard data.count <= Self.maximumSize else {
      throw ConfigurationError(
        key: "config", value: path, allowed: "a YAML file of at most \(Self.maximumSize) bytes (1 MiB)")
    }
    guard let text = String(validating: data, as: UTF8.self) else {
      throw ConfigurationError(key: "config", value: path, allowed: "a YAML file in UTF-8 (it has bytes that are not)")
    }
    return try self.parse(text, path: path, declarations: declarations)
  }

  package static func parse(
    _ text: String,
    path: String,
    declarations: [SettingDeclaration]
  ) throws(ConfigurationError) -> [String: [String]] {
    let parser: Parser
    let node: Node?
    do {
      parser = try Parser(yaml: text)
      node = try parser.singleRoot()
    } catch {
      // Yams quotes the offending line, which may be as long as the file.
      throw ConfigurationError(
        key: "config", value: path, allowed: "valid YAML (\(BoundedText("\(error)", limit: 512)))")
    }
    guard let node else { return [:] }
    // Anchors are only known while their parser lives; Yams holds them weakly.
    try withExtendedLifetime(parser) { () throws(ConfigurationError) in
      if let anchor = Self.firstAnchor(in: node) {
        throw ConfigurationError(
          key: "config", value: path,
          allowed: "YAML without anchors and aliases (it has &\(anchor.rawValue)); write each value out")
      }
    }
    guard let mapping = node.mapping else {
      throw ConfigurationError(key: "config", value: path, allowed: "a mapping of keys such as `cert-ttl: 24h`")
    }
    let byKey = Dictionary(declarations.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
    var settings: [String: [String]] = [:]
    for (keyNode, valueNode) in mapping {
      guard let key = keyNode.scalar?.string else {
        throw ConfigurationError(key: "config", value: path, allowed: "plain keys such as `cert-ttl: 24h`")
      }
      guard let declaration = byKey[key] else {
        throw ConfigurationError(
          key: key, value: Self.shape(valueNode),
          allowed: CommandLineSettings.known(key, among: declarations.map(\.key)))
      }
      settings[key] = try Self.values(valueNode, for: declaration)
    }
    return settings
  }

  static func values(_ node: Node, for declaration: SettingDeclaration) throws(ConfigurationError) -> [String] {
    let key = declaration.key + " (from the config file)"
    switch (node, declaration.kind) {
    case (.scalar(let scalar), _):
      return [scalar.string]
    case (.sequence, .single), (.sequence, .flag):
      throw ConfigurationError(
        key: key, value: Self.shape(node),
        allowed: "one value (\(declaration.allowed)); only repeatable keys take a list")
    case (.mapping, .single), (.mapping, .flag):
      throw ConfigurationError(key: key, value: Self.shape(node), allowed: "one value (\(declaration.allowed))")
    case (.sequence(let sequence), .repeatable(_, let yaml)):
      var values: [String] = []
      for item in sequence {
        if let value = item.scalar?.string {
          values.append(value)
        } else if yaml == .fields, let fields = item.mapping {
          // `workload: [{uid: 1001, spiffe-id: …}]` is read as `uid=1001,spiffe-id=…`.
          values.append(try Self.pairs(fields, key: key).joined(separator: ","))
        } else {
          let plain = yaml == .fields ? "plain values or mappings of fields" : "plain values"
          throw ConfigurationError(
            key: key, value: Self.shape(item), allowed: "a list of \(plain) (\(declaration.allowed))")
        }
      }
      return values
    case (.mapping(let entries), .repeatable(_, .entries)):
      // `ca-header: {X-Tenant: a}` is read as `X-Tenant=a`.
      return try Self.pairs(entries, key: key)
    case (.mapping, .repeatable):
      throw ConfigurationError(key: key, value: Self.shape(node), allowed: "a list (\(declaration.allowed))")
    case (.alias, _):
      throw ConfigurationError(key: key, value: "an alias", allowed: "a plain value")
    }
  }

  static func pairs(_ mapping: Node.Mapping, key: String) throws(ConfigurationError) -> [String] {
    var pairs: [String] = []
    for (name, value) in mapping {
      guard let name = name.scalar?.string, let value = value.scalar?.string else {
        throw ConfigurationError(
          key: key, value: "a nested mapping", allowed: "a mapping of plain names to plain values")
      }
      pairs.append("\(name)=\(value)")
    }
    return pairs
  }

  /// The first anchor in the document, looked for before anything walks into an alias: every
  /// alias points at an anchored node, so the walk stops before one could be expanded and costs
  /// no more than the text is long (a billion-laughs document is refused at its first anchor).
  static func firstAnchor(in node: Node) -> Anchor? {
    if let anchor = node.anchor { return anchor }
    switch node {
    case .scalar, .alias: return nil
    case .sequence(let sequence): return sequence.lazy.compactMap(Self.firstAnchor(in:)).first
    case .mapping(let mapping):
      return mapping.lazy.compactMap { Self.firstAnchor(in: $0.key) ?? Self.firstAnchor(in: $0.value) }.first
    }
  }

  /// The largest config file read, in bytes.
  package static let maximumSize = 1 << 20

  /// A value as errors show it: plain values as written, others by their shape, never the
  /// parser's representation.
  static func shape(_ node: Node) -> String {
    switch node {
    case .scalar(let scalar): scalar.string
    case .sequence(let sequence): "a list of \(sequence.count)"
    case .mapping(let mapping): "a mapping of \(mapping.count)"
    case .alias: "an alias"
    }
  }
}
