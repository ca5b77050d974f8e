import ArgumentParser
import Foundation
import SDSAgentCore

/// Flags fall back to `SDS_AGENT_<NAME>` environment variables, then to defaults.
enum EnvironmentOption {
  static func value(_ flag: String?, name: String) -> String? {
    if let flag { return flag }
    let key = "SDS_AGENT_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    guard let value = ProcessInfo.processInfo.environment[key], !value.isEmpty else { return nil }
    return value
  }

  static func parse<T>(
    _ flag: String?,
    name: String,
    allowed: String,
    _ transform: (String) -> T?
  ) throws(ConfigurationError) -> T? {
    guard let text = self.value(flag, name: name) else { return nil }
    guard let value = transform(text) else {
      throw ConfigurationError(key: name, value: text, allowed: allowed)
    }
    return value
  }
}
