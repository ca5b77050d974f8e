import SDSAgentCore

/// One setting, declared once: its key (the flag `--key`, the config-file key and
/// `SDS_AGENT_<KEY>`), its help, how it is written, how it is parsed, its default and whether
/// reload applies it. The command line, the environment, the config file, `check-config` and
/// reload all read these declarations.
///
/// Not apple/swift-configuration (1.4.0): its providers skip keys nobody reads (no unknown-key
/// errors), its command-line provider splits values at commas (a `workload` rule has commas)
/// and ignores unknown flags, and its YAML snapshot takes no mappings as values.
package struct Setting<Value: Sendable>: Sendable {
  package let declaration: SettingDeclaration
  /// The value when no layer sets the key; `nil` when there is none or it depends on other keys.
  package let defaultValue: Value?
  let parse: @Sendable (String) throws(ConfigurationError) -> Value?

  /// - Parameters:
  ///   - valueName: how the value is written in help, e.g. `DURATION`.
  ///   - allowed: what a valid value looks like, for errors (`a duration such as 30s`).
  ///   - shownDefault: the default as help shows it; derived defaults describe themselves.
  ///   - parse: the typed value, or `nil` for a value outside `allowed`; it may throw its own,
  ///     more precise error.
  ///   - effective: the value in force, as `check-config` prints it and reload compares it;
  ///     nothing for a setting outside `run` (`ca serve`'s own).
  package init(
    _ key: String,
    _ valueName: String,
    help: String,
    kind: SettingKind = .single,
    allowed: String,
    default defaultValue: Value? = nil,
    shownDefault: String? = nil,
    sources: Set<SettingsSource.Origin> = [.flag, .environment, .file],
    reload: SettingReload,
    parse: @escaping @Sendable (String) throws(ConfigurationError) -> Value?,
    effective: @escaping @Sendable (AgentConfiguration) -> String = { _ in "" }
  ) {
    self.declaration = SettingDeclaration(
      key: key, valueName: valueName, help: help, kind: kind, allowed: allowed, shownDefault: shownDefault,
      sources: sources, reload: reload, effective: effective)
    self.defaultValue = defaultValue
    self.parse = parse
  }

  package var key: String { self.declaration.key }
  package var help: String { self.declaration.help }
  package var allowed: String { self.declaration.allowed }
}

/// What every setting has regardless of its type: enough for help, the config file's keys,
/// `check-config` and reload.
package struct SettingDeclaration: Sendable {
  package let key: String
  package let valueName: String
  package let help: String
  package let kind: SettingKind
  package let allowed: String
  package let shownDefault: String?
  package let sources: Set<SettingsSource.Origin>
  package let reload: SettingReload
  package let effective: @Sendable (AgentConfiguration) -> String

  package var environmentName: String { SettingsSource.environmentName(for: self.key) }
}

/// How a setting is written.
package enum SettingKind: Sendable, Equatable {
  /// One value; the highest layer wins. Given twice on the command line or in the config file,
  /// it is an error naming the key, never a silent choice of one.
  case single
  /// Any number of values from the highest layer that has any: the flag given again, a YAML
  /// list, or the environment variable split at `separator`. `kind: .repeatable()` declares one.
  case repeatable(separator: Character = ",", yaml: RepeatableYAML = .values)
  /// A boolean: `--key` alone on the command line, `true`/`false` elsewhere.
  case flag

  package var isRepeatable: Bool {
    if case .repeatable = self { return true }
    return false
  }
}

/// Which YAML shapes a repeatable key takes besides a list of plain values.
package enum RepeatableYAML: Sendable, Equatable {
  /// Only a list of plain values.
  case values
  /// Also a mapping, each entry one `NAME=VALUE` value (`ca-header: {X-Tenant: a}`).
  case entries
  /// Also list items that are mappings, each one value of comma-separated `name=value` fields
  /// (`workload: [{uid: 1001, spiffe-id: …}]`).
  case fields
}

/// Whether reload (SIGHUP) applies a changed value to the running agent, and who applies it.
package enum SettingReload: Sendable, Equatable {
  /// Reload applies the value: each of these appliers takes the new configuration.
  case live(Set<SettingApplier>)
  case restart

  package var isLive: Bool { self != .restart }

  /// Who applies the value on reload; none for `.restart`.
  package var appliers: Set<SettingApplier> {
    guard case .live(let appliers) = self else { return [] }
    return appliers
  }
}
