import SDSAgentCore

/// The settings of session ticket keys for a fleet of gateways, declared like every other setting.
extension AgentSettings {
  package static let sessionTicketKeys = Setting<SessionTicketKeySource>(
    SessionTicketKeySource.key, "FIELDS",
    help: "Session ticket keys served under a name (repeatable): name=NAME,seed=FILE,period=DURATION; three "
      + "80-byte keys (this epoch's, the previous and the next) derived from the seed (0600, at least 32 bytes) "
      + "with HKDF-SHA256, pushed at each epoch boundary and when the seed changes.",
    kind: .repeatable(separator: ";", yaml: .fields), allowed: SessionTicketKeySource.syntax, reload: .restart,
    parse: { text throws(ConfigurationError) in try SessionTicketKeySource(parsing: text) },
    effective: { $0.sessionTicketKeys.map(\.description).joined(separator: "; ") })

  /// The session ticket keys configured: each name once, and not a file secret's.
  static func sessionTicketKeySources(
    _ settings: SettingsSource, fileSecrets: [FileSecretSource]
  ) throws(ConfigurationError) -> [SessionTicketKeySource] {
    let sources = try settings.readAll(Self.sessionTicketKeys)
    var names = Set(fileSecrets.map(\.name))
    for source in sources where !names.insert(source.name).inserted {
      throw ConfigurationError(
        key: SessionTicketKeySource.key, value: source.name,
        allowed: "a name no other session-ticket-keys entry or secret has")
    }
    return sources
  }
}
