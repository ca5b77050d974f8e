/// Which session ticket keys a caller may have: in node-agent mode those whose `callers` name it,
/// otherwise all.
package struct SessionTicketKeyAccess: Sendable, Equatable {
  package var allowed: Set<String>
  /// Configured for other callers only: asking for one is refused, not merely unknown.
  package var withheld: Set<String>

  package init(allowed: Set<String> = [], withheld: Set<String> = []) {
    self.allowed = allowed
    self.withheld = withheld
  }

  /// `names` with the callers each may go to; `checksCallers` in node-agent mode.
  package init(names: [(name: String, callers: [SPIFFEID])], caller: SPIFFEID, checksCallers: Bool) {
    self.init()
    for entry in names {
      if !checksCallers || entry.callers.contains(caller) {
        self.allowed.insert(entry.name)
      } else {
        self.withheld.insert(entry.name)
      }
    }
  }
}

/// Serves session ticket keys: `SessionTicketKeyWatcher`.
package protocol SessionTicketKeyProvider: Sendable {
  /// The names `caller` may have, and those configured for other callers only.
  func access(for caller: SPIFFEID) -> SessionTicketKeyAccess
}
