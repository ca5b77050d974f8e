import Foundation

/// One row of the identity table as the agent's views show it (STATUS, `/readyz`,
/// `/debug/secrets`, `sds-agent status`): never key material.
public struct IdentitySnapshot: Sendable {
  public let identity: SPIFFEID
  public let isPinned: Bool
  public let phase: IdentityPhase
  public let served: ServedSecrets
  public let renewAt: Date?
  public let retryAt: Date?
  public let streams: Int
  public let idleSince: Date?

  /// Whether the identity's certificate can be served at `now`.
  public func isServable(at now: Date) -> Bool {
    self.served.svid?.isValid(at: now) ?? false
  }
}
