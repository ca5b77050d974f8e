import ArgumentParser
import Foundation

/// Flags fall back to `SDS_AGENT_<NAME>` environment variables, then to defaults.
enum EnvironmentOption {
  static func value(_ flag: String?, name: String) -> String? {
    if let flag { return flag }
    let key = "SDS_AGENT_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    guard let value = ProcessInfo.processInfo.environment[key], !value.isEmpty else { return nil }
    return value
  }
}
