import Foundation

/// One row of the identity table as the agent's views show it (STATUS, `/readyz`,
/// `/debug/secrets`, `sds-agent status`): never key material.
package struct IdentitySnapshot: Sendable {
  package let identity: SPIFFEID
  package let isPinned: Bool
  package let phase: IdentityPhase
  package let served: ServedSecrets
  package let renewAt: Date?
  package let retryAt: Date?
  package let streams: Int
  package let idleSince: Date?

  /// Whether the identity's certificate can be served at `now`.
  package func isServable(at now: Date) -> Bool {
    self.served.svid?.isValid(at: now) ?? false
  }
}
