import SDSAgentCore

extension FuzzTarget {
  /// `SPIFFEID(parsing:)`; an accepted ID prints as the text it was parsed from.
  static let spiffeID = FuzzTarget(
    name: "spiffe-id",
    summary: "SPIFFEID(parsing:) and its round trip"
  ) { data in
    let text = String(decoding: data, as: UTF8.self)
    let id: SPIFFEID
    do {
      id = try SPIFFEID(parsing: text)
    } catch {
      return "rejected: \(error)"
    }
    FuzzTarget.check(id.description == text, "\(text.debugDescription) parsed as \(id)")
    let rebuilt = try? SPIFFEID(trustDomain: id.trustDomain, path: id.path)
    FuzzTarget.check(rebuilt == id, "\(id) does not rebuild from its trust domain and path")
    return "\(id)"
  }
}
