/// Whether a signing may start now: `ca serve`'s admission control, asked by the signer once the
/// caller is authenticated and before the CSR is verified and signed.
package protocol SigningAdmission: Sendable {
  /// Admits a signing for `caller` (the token's identity: a node agent, not the workload it asks
  /// for), or refuses it with a time to come back. An admitted signing ends with `finished()`.
  func admit(caller: SPIFFEID) -> AdmissionDecision
  /// An admitted signing ended, signed or not.
  func finished()
}

package enum AdmissionDecision: Sendable, Equatable {
  case admitted
  case refused(AdmissionRefusal)
}

/// Why a signing was refused, and how long the caller should wait before it tries again.
package struct AdmissionRefusal: Sendable, Equatable {
  package enum Reason: String, Sendable, CaseIterable {
    /// As many signings as `--max-inflight` are in flight.
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
