import Foundation
import SDSAgent

extension FuzzTarget {
  /// The YAML config file: `ConfigFile.parse`, then the loader on what it parsed.
  static let configFile = FuzzTarget(
    name: "config",
    summary: "ConfigFile.parse, then ConfigurationLoader on the parsed settings"
  ) { data in
    let text = String(decoding: data, as: UTF8.self)
    // Some keys name files the loader reads (the CA token): never devices or kernel files,
    // which could block or never end.
    guard !["/dev", "/proc", "/sys"].contains(where: text.contains) else { return "skipped: names a device" }
    let settings: [String: [String]]
    do {
      settings = try ConfigFile.parse(text, path: "fuzz.yaml", declarations: AgentSettings.fileSettings)
    } catch {
      return "not a config file: \(error)"
    }
    let declared = Set(AgentSettings.fileSettings.map(\.key))
    for key in settings.keys {
      FuzzTarget.check(declared.contains(key), "the config file parser accepted the undeclared key \(key)")
    }
    // The file's settings given to the loader as the only layer: the same parsing and
    // validation as a file, without touching the disk for every input.
    var flags = settings
    flags[AgentSettings.config.key] = nil
    do {
      _ = try ConfigurationLoader(flags: flags, environment: [:]).load()
      return "loaded \(settings.count) setting(s)"
    } catch {
      return "parsed, refused by the loader: \(error)"
    }
  }
}
