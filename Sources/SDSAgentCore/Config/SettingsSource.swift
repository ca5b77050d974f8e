/// Raw settings by key, layered: command-line flags over `SDS_AGENT_<KEY>` environment
/// variables over the config file over defaults. Keys are the flag names (`cert-ttl`).
public struct SettingsSource: Sendable {
  public enum Origin: String, Sendable {
    case flag
    case environment
    case file
  }

  public var flags: [String: [String]]
  public var environment: [String: String]
  public var file: [String: [String]]

  public init(flags: [String: [String]] = [:], environment: [String: String] = [:], file: [String: [String]] = [:]) {
    self.flags = flags
    self.environment = environment
    self.file = file
  }

  public static func environmentName(for key: String) -> String {
    "SDS_AGENT_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
  }

  /// The winning value of a key and where it came from.
  public func value(_ key: String) -> (value: String, origin: Origin)? {
    if let value = self.flags[key]?.last { return (value, .flag) }
    if let value = self.environment[Self.environmentName(for: key)], !value.isEmpty { return (value, .environment) }
    if let value = self.file[key]?.last { return (value, .file) }
    return nil
  }

  /// All values of a repeatable key from the highest layer that has any. The environment
  /// separates values with `separator`.
  public func values(_ key: String, separator: Character = ",") -> [String] {
    if let values = self.flags[key], !values.isEmpty { return values }
    if let value = self.environment[Self.environmentName(for: key)], !value.isEmpty {
      return value.split(separator: separator).map { String($0).trimmingSpaces.description }
    }
    return self.file[key] ?? []
  }

  /// Parses a key with `transform`; a value it rejects is an error naming key, value and what is
  /// allowed.
  public func parse<T>(
    _ key: String,
    allowed: String,
    _ transform: (String) -> T?
  ) throws(ConfigurationError) -> T? {
    guard let (text, origin) = self.value(key) else { return nil }
    guard let value = transform(text) else {
      let source =
        origin == .environment
        ? " (from \(Self.environmentName(for: key)))" : origin == .file ? " (from the config file)" : ""
      throw ConfigurationError(key: key + source, value: text, allowed: allowed)
    }
    return value
  }
}
