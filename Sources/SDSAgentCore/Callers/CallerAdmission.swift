import Foundation
import Logging
import Synchronization

/// Admits SDS callers: identifies each one (`CallerAttestor`), holds it to its rates
/// (`CallerRateLimiter`), and gives it a lease on its identity's secrets in the `IdentityTable`
/// once that identity is issued and any forwarded token is proven. Every refusal is logged and
/// counted here.
package final class CallerAdmission: SecretLeaseProvider {
  private let attestorState: Mutex<CallerAttestor>
  package let limiter: CallerRateLimiter
  package let table: IdentityTable
  private let counters: AgentCounters
  private let logger: Logger
  private let now: @Sendable () -> Date

  package init(
    attestor: CallerAttestor,
    limiter: CallerRateLimiter,
    table: IdentityTable,
    counters: AgentCounters,
    logger: Logger,
    now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.attestorState = Mutex(attestor)
    self.limiter = limiter
    self.table = table
    self.counters = counters
    self.logger = logger
    self.now = now
  }

  package var attestor: CallerAttestor { self.attestorState.withLock { $0 } }

  /// Reloaded rules and token keys apply to new streams; new limits to every caller.
  package func update(attestor: CallerAttestor, limits: CallerLimits) {
    self.attestorState.withLock { $0 = attestor }
    self.limiter.update(limits)
  }

  package func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
    let attestor = self.attestor
    let caller: Caller
    do {
      caller = try await attestor.attest(evidence)
    } catch {
      throw self.refuse(error, caller: evidence?.summary ?? "no peer credentials or token")
    }
    do {
      return try await self.admit(caller, attestor: attestor)
    } catch {
      throw self.refuse(error, caller: caller.description)
    }
  }

  package func leaseNow(for evidence: CallerEvidence?) throws(CallerRefusal) -> SecretLease? {
    let attestor = self.attestor
    let caller: Caller
    do {
      guard let identified = try attestor.attestNow(evidence) else { return nil }
      caller = identified
    } catch {
      throw self.refuse(error, caller: evidence?.summary ?? "no peer credentials or token")
    }
    guard self.table.readiness(of: caller.identity, tokenDigest: nil) == .ready else { return nil }
    let lease: SecretLease
    do {
      lease = try self.open(caller, attestor: attestor)
    } catch {
      throw self.refuse(error, caller: caller.description)
    }
    // Dropped in between: the waiting path tells the caller.
    guard self.table.readiness(of: caller.identity, tokenDigest: nil) == .ready else {
      lease.release()
      return nil
    }
    return lease
  }

  private func admit(_ caller: Caller, attestor: CallerAttestor) async throws(CallerRefusal) -> SecretLease {
    let lease = try self.open(caller, attestor: attestor)
    do {
      try await self.awaitIssued(caller)
    } catch {
      lease.release()
      throw error
    }
    return lease
  }

  /// Holds the caller to its stream rate and opens its stream on the identity table.
  private func open(_ caller: Caller, attestor: CallerAttestor) throws(CallerRefusal) -> SecretLease {
    let identity = caller.identity
    let isAgent = identity == self.table.pinnedIdentity
    if isAgent, !caller.isVerified {
      throw CallerRefusal(.permissionDenied, "a forwarded token may not name the agent's own identity \(identity)")
    }
    if !isAgent || attestor.mode != .agent,
      let (rate, wait) = self.limiter.take(.stream, for: identity, now: self.now())
    {
      throw CallerRefusal(
        .rateLimited, "\(identity) opened more than \(rate) streams; retry in \(DurationParser.format(wait))")
    }
    let cache = self.table.openStream(identity, credential: caller.credential, now: self.now())
    return SecretLease(caller: caller, cache: cache, onExpired: { [table] in table.wake.signal() }) {
      [table, now] in table.closeStream(identity, now: now())
    }
  }

  /// Returns once the caller's identity has had its first issuance, and the CA has accepted a
  /// forwarded token nobody verified.
  private func awaitIssued(_ caller: Caller) async throws(CallerRefusal) {
    let tokenDigest: Data? =
      if case .forwardedToken(let token) = caller.credential, !caller.isVerified {
        IdentityTable.digest(token)
      } else {
        nil
      }
    while true {
      let outcome: IdentityTable.Outcome?
      switch self.table.readiness(of: caller.identity, tokenDigest: tokenDigest) {
      case .ready:
        return
      case .dropped:
        throw CallerRefusal(.unavailable, "\(caller.identity) was dropped; reconnect")
      case .issuing:
        outcome = await self.table.issue(caller.identity, retries: false, joinInFlight: true)
      case .needsIssuance:
        if let (rate, wait) = self.limiter.take(.certificate, for: caller.identity, now: self.now()) {
          throw CallerRefusal(
            .rateLimited,
            "\(caller.identity) asked for more than \(rate) certificates; retry in \(DurationParser.format(wait))")
        }
        outcome = await self.table.issue(
          caller.identity, credential: caller.credential, retries: tokenDigest == nil, joinInFlight: false)
      }
      if case .failure(let error) = outcome {
        try self.handleFailure(error, caller: caller, tokenDigest: tokenDigest)
      }
    }
  }

  private func handleFailure(
    _ error: CertificateAuthorityError,
    caller: Caller,
    tokenDigest: Data?
  ) throws(CallerRefusal) {
    switch error.code {
    case .refused:
      // A refused forwarded token is the caller's failure to authenticate; a refused node agent
      // (impersonation) is a matter of the CA's authorization.
      throw CallerRefusal(
        tokenDigest == nil && caller.credential != .agent ? .permissionDenied : .unauthenticated,
        "the CA refused a certificate for \(caller.identity): \(error.message)", cause: error)
    default:
      guard tokenDigest == nil else {
        throw CallerRefusal(
          .unavailable, "the forwarded token could not be verified by the CA: \(error.message); retry shortly",
          cause: error)
      }
      // The identity is now kept fresh with retries (the supervisor logs each failure with its
      // retry_in); the caller waits on its stream.
      return
    }
  }

  private func refuse(_ refusal: CallerRefusal, caller: String) -> CallerRefusal {
    self.counters.increment(.callersRefused, labels: [("reason", refusal.code.rawValue)])
    self.logger.warning(
      "refused an SDS caller",
      metadata: [
        "status": "\(refusal.rpcErrorCode)", "reason": "\(refusal.message)", "caller": "\(caller)",
      ])
    return refusal
  }
}
