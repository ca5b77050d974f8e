import SDSAgentCore

/// Session ticket keys the operator names: `name=NAME,seed=FILE,period=DURATION`, and in
/// node-agent mode `callers=ID+ID`.
package struct SessionTicketKeySource: Sendable, Hashable, CustomStringConvertible {
  package let name: String
  /// The seed file: 0600, at least 32 bytes.
  package let seed: String
  package let schedule: SessionTicketSchedule
  /// In node-agent mode, the identities that may have the keys.
  package let callers: [SPIFFEID]

  package static let key = "session-ticket-keys"
  package static let syntax =
    "name=NAME,seed=FILE,period=DURATION (whole seconds, at least 10s), and in node-agent mode "
    + "callers=SPIFFE-ID[+SPIFFE-ID…] (a mapping in YAML)"

  package init(name: String, seed: String, period: Duration, callers: [SPIFFEID] = []) {
    self.name = name
    self.seed = seed
    self.schedule = SessionTicketSchedule(period: period)
    self.callers = callers
  }

  package var description: String {
    "name=\(self.name),seed=\(self.seed),period=\(DurationParser.format(self.schedule.period))"
      + (self.callers.isEmpty ? "" : ",callers=" + self.callers.map(\.description).joined(separator: "+"))
  }

  package init(parsing text: String) throws(ConfigurationError) {
    var fields: [String: String] = [:]
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard let equals = part.firstIndex(of: "="), equals != part.startIndex else {
        throw ConfigurationError(key: Self.key, value: text, allowed: Self.syntax)
      }
      let key = String(part[..<equals])
      guard ["name", "seed", "period", "callers"].contains(key) else {
        throw ConfigurationError(
          key: Self.key, value: "\(BoundedText(key, limit: 40))",
          allowed: "the keys name, seed, period and callers (unknown key)")
      }
      guard fields[key] == nil else {
        throw ConfigurationError(key: Self.key, value: key, allowed: "each key once per entry")
      }
      fields[key] = String(part[part.index(after: equals)...])
    }
    guard let name = fields["name"], !name.isEmpty, name.utf8.count <= 253, !name.contains(":"),
      SecretResource(name: name) == nil, name != SecretResource.allTrustDomainsName
    else {
      throw ConfigurationError(
        key: Self.key, value: text, allowed: "a name (no ':', at most 253 bytes, not one of the agent's own)")
    }
    guard let seed = fields["seed"], seed.hasPrefix("/") else {
      throw ConfigurationError(key: Self.key, value: text, allowed: "seed as an absolute path; " + Self.syntax)
    }
    guard let periodText = fields["period"],
      let period = DurationParser.parse(periodText, in: SessionTicketSchedule.minimumPeriod ... .seconds(366 * 86400)),
      period.components.attoseconds == 0
    else {
      throw ConfigurationError(
        key: Self.key, value: "period of \(name)", allowed: "whole seconds from 10s to 366d; " + Self.syntax)
    }
    var callers: [SPIFFEID] = []
    for text in (fields["callers"] ?? "").split(separator: "+") {
      do throws(SPIFFEIDError) {
        callers.append(try SPIFFEID(parsing: String(text)))
      } catch {
        throw ConfigurationError(
          key: Self.key, value: "callers of \(name)", allowed: "SPIFFE IDs joined by + (\(error.reason))")
      }
    }
    self.init(name: name, seed: seed, period: period, callers: callers)
  }
}
