/// A running service's one way to take a new configuration on reload. Reload asks every
/// applier first and applies only once none refused, so a refusal leaves the agent as it was.
protocol Reconfigurable: Sendable {
  /// Checks `next` and returns what applies it; throws to refuse the whole reload.
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration
}

/// A new configuration checked by one applier, ready to be applied.
struct Reconfiguration: Sendable {
  let apply: @Sendable () async throws -> Void

  init(_ apply: @escaping @Sendable () async throws -> Void) {
    self.apply = apply
  }

  /// Nothing to apply.
  static let none = Reconfiguration {}
}

/// A service the agent runs only in some configurations: without it, reload has nothing to apply.
extension Optional: Reconfigurable where Wrapped: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    try await self?.reconfiguration(to: next) ?? .none
  }
}
