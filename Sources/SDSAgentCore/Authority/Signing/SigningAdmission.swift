/// Whether a certificate request may go on: `ca serve`'s admission control, asked by the signer
/// when a call starts (the in-flight cap) and once its caller is authenticated (the caller's rate).
package protocol SigningAdmission: Sendable {
  /// Admits a call while fewer than the cap are in flight, or refuses it with a time to come
  /// back. An admitted call ends with `finished()`, signed or not.
  func start() -> AdmissionDecision
  /// Charges the call to `caller` (the token's identity: a node agent, not the workload it asks
  /// for), or refuses it with the time until the caller's next turn.
  func charge(caller: SPIFFEID) -> AdmissionDecision
  /// An admitted call ended.
  func finished()
}

package enum AdmissionDecision: Sendable, Equatable {
  case admitted
  case refused(AdmissionRefusal)
}

/// Why a signing was refused, and how long the caller should wait before it tries again.
package struct AdmissionRefusal: Sendable, Equatable {
  package enum Reason: String, Sendable, CaseIterable {
    /// As many calls as `--max-inflight` are in flight.
    case inFlight = "in_flight"
    /// The caller used its `--caller-rate`.
    case callerRate = "caller_rate"
  }

  package let reason: Reason
  package let retryAfter: Duration

  package init(_ reason: Reason, retryAfter: Duration) {
    self.reason = reason
    self.retryAfter = retryAfter
  }
}
