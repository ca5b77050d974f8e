import SDSAgentCore

extension SecretCache {
  /// Waits until `predicate` holds for the served secrets, re-checking on every change.
  public func waitUntil(_ predicate: (ServedSecrets) -> Bool) async {
    let changes = self.changes()
    if predicate(self.current) { return }
    for await _ in changes where predicate(self.current) {
      return
    }
  }
}
