import Foundation
import SDSAgentCore

/// Raw settings by key, layered: command-line flags over `SDS_AGENT_<KEY>` environment
/// variables (`SDS_AGENT_CA_SERVE_<KEY>` for `ca serve`) over the config file over defaults. Keys are
/// the flag names (`cert-ttl`).
package struct SettingsSource: Sendable {
  package enum Origin: String, Sendable {
    case flag
    case environment
    case file
  }

  package let flags: [String: [String]]
  package let environment: [String: String]
  package let file: [String: [String]]
  /// What the environment variables' names start with.
  package let environmentPrefix: String

  package init(
    flags: [String: [String]] = [:], environment: [String: String] = [:], file: [String: [String]] = [:],
    environmentPrefix: String = Self.agentEnvironmentPrefix
  ) {
    self.flags = flags
    self.environment = environment
    self.file = file
    self.environmentPrefix = environmentPrefix
  }

  /// `run`'s environment variables: `SDS_AGENT_<KEY>`.
  package static let agentEnvironmentPrefix = "SDS_AGENT_"

  package static func environmentName(for key: String, prefix: String = Self.agentEnvironmentPrefix) -> String {
    prefix + key.uppercased().replacingOccurrences(of: "-", with: "_")
  }

  package func environmentName(for key: String) -> String {
    Self.environmentName(for: key, prefix: self.environmentPrefix)
  }

  /// The winning value of a key and where it came from.
  package func value(_ key: String) -> (value: String, origin: Origin)? {
    if let value = self.flags[key]?.last { return (value, .flag) }
    if let value = self.environment[self.environmentName(for: key)], !value.isEmpty { return (value, .environment) }
    if let value = self.file[key]?.last { return (value, .file) }
    return nil
  }

  /// All values of a repeatable key from the highest layer that has any, and that layer. The
  /// environment separates values with `separator`.
  package func values(_ key: String, separator: Character = ",") -> (values: [String], origin: Origin)? {
    if let values = self.flags[key], !values.isEmpty { return (values, .flag) }
    if let value = self.environment[self.environmentName(for: key)], !value.isEmpty {
      return (value.split(separator: separator).map { $0.trimmingCharacters(in: .whitespaces) }, .environment)
    }
    if let values = self.file[key], !values.isEmpty { return (values, .file) }
    return nil
  }

  /// The setting's value from the highest layer, else its default. A value the setting rejects
  /// is an error naming the key, where the value came from, the value and what is allowed.
  package func read<Value>(_ setting: Setting<Value>) throws(ConfigurationError) -> Value? {
    guard let (text, origin) = self.value(setting.key) else { return setting.defaultValue }
    return try self.parse(text, origin: origin, setting)
  }

  /// The setting's value, or its default; a setting without either is missing, an error.
  package func require<Value>(_ setting: Setting<Value>) throws(ConfigurationError) -> Value {
    guard let value = try self.read(setting) else {
      throw ConfigurationError(key: setting.key, value: "", allowed: setting.allowed)
    }
    return value
  }

  /// Every value of a repeatable setting, parsed.
  package func readAll<Value>(_ setting: Setting<Value>) throws(ConfigurationError) -> [Value] {
    guard case .repeatable(let separator, _) = setting.declaration.kind,
      let (texts, origin) = self.values(setting.key, separator: separator)
    else { return [] }
    var values: [Value] = []
    for text in texts {
      if let value = try self.parse(text, origin: origin, setting) { values.append(value) }
    }
    return values
  }

  /// An error about the winning value of `key`, naming where it came from.
  package func invalid(_ key: String, allowed: String) -> ConfigurationError {
    let (text, origin) = self.value(key) ?? ("", .flag)
    return ConfigurationError(key: self.naming(key, origin: origin), value: text, allowed: allowed)
  }

  func parse<Value>(_ text: String, origin: Origin, _ setting: Setting<Value>) throws(ConfigurationError)
    -> Value?
  {
    // The command line and the environment arrive decoded with invalid UTF-8 replaced by U+FFFD.
    guard !text.unicodeScalars.contains("\u{FFFD}") else {
      throw ConfigurationError(
        key: self.naming(setting.key, origin: origin), value: text,
        allowed: "valid UTF-8 (the value has bytes that are not)")
    }
    let parsed: Value?
    do {
      parsed = try setting.parse(text)
    } catch {
      throw error.renamed(self.naming(error.key, origin: origin))
    }
    guard let parsed else {
      throw ConfigurationError(key: self.naming(setting.key, origin: origin), value: text, allowed: setting.allowed)
    }
    return parsed
  }

  /// The key as errors name it: a flag is named as is, other layers say where the value was.
  func naming(_ key: String, origin: Origin) -> String {
    switch origin {
    case .flag: key
    case .environment: key + " (from \(self.environmentName(for: key)))"
    case .file: key + " (from the config file)"
    }
  }
}
