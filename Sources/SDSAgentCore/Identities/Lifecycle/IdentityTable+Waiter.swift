extension IdentityTable {
  /// One caller's place in line for an issuance.
  struct Waiter: Sendable {
    private let body: @Sendable (Outcome) -> Void

    init(_ body: @escaping @Sendable (Outcome) -> Void) {
      self.body = body
    }

    func resume(_ outcome: Outcome) {
      self.body(outcome)
    }
  }
}
