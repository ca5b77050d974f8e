import Foundation
import SDSAgentCore
import Yams

/// The YAML config file: a flat mapping whose keys are the flag names of `run`
/// (`cert-ttl: 24h`); repeatable keys take a list. Unknown keys are errors, so a typo never
/// silently falls back to a default.
public enum ConfigFile {
  public static func load(path: String, knownKeys: Set<String>) throws(ConfigurationError) -> [String: [String]] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigurationError(key: "config", value: path, allowed: "a readable YAML file")
    }
    return try self.parse(String(decoding: data, as: UTF8.self), path: path, knownKeys: knownKeys)
  }

  public static func parse(_ text: String, path: String, knownKeys: Set<String>) throws(ConfigurationError) -> [String:
    [String]]
  {
    let node: Node?
    do {
      node = try Yams.compose(yaml: text)
    } catch {
      throw ConfigurationError(key: "config", value: path, allowed: "valid YAML (\(error))")
    }
    guard let node else { return [:] }
    guard let mapping = node.mapping else {
      throw ConfigurationError(key: "config", value: path, allowed: "a mapping of keys such as `cert-ttl: 24h`")
    }
    var settings: [String: [String]] = [:]
    for (keyNode, valueNode) in mapping {
      guard let key = keyNode.string else {
        throw ConfigurationError(key: "config", value: "\(keyNode)", allowed: "string keys")
      }
      guard knownKeys.contains(key) else {
        throw ConfigurationError(
          key: key, value: valueNode.string ?? "\(valueNode)",
          allowed: "a known key: \(knownKeys.sorted().joined(separator: ", "))")
      }
      switch valueNode {
      case .scalar(let scalar):
        settings[key] = [scalar.string]
      case .sequence(let sequence):
        var values: [String] = []
        for item in sequence {
          if let value = item.string {
            values.append(value)
          } else if let fields = item.mapping {
            // `workload: [{uid: 1001, spiffe-id: …}]` is accepted as `uid=1001,spiffe-id=…`.
            var pairs: [String] = []
            for (name, value) in fields {
              guard let name = name.string, let value = value.string else {
                throw ConfigurationError(
                  key: key, value: "\(fields)", allowed: "a mapping of plain names to plain values")
              }
              pairs.append("\(name)=\(value)")
            }
            values.append(pairs.joined(separator: ","))
          } else {
            throw ConfigurationError(key: key, value: "\(item)", allowed: "a list of plain values or mappings")
          }
        }
        settings[key] = values
      case .mapping(let nested):
        // `ca-header: {X-Tenant: a}` is accepted as KEY=VALUE pairs.
        var values: [String] = []
        for (name, value) in nested {
          guard let name = name.string, let value = value.string else {
            throw ConfigurationError(key: key, value: "\(nested)", allowed: "a mapping of plain names to plain values")
          }
          values.append("\(name)=\(value)")
        }
        settings[key] = values
      case .alias:
        throw ConfigurationError(key: key, value: "an alias", allowed: "a plain value")
      }
    }
    return settings
  }
}
