import Crypto
import Foundation
import Synchronization

/// Every identity the agent serves, each with its lifecycle, its cache of served secrets and the
/// callers waiting for its next issuance. The agent's own identity is a pinned row; workload
/// identities come and go at run time. The `IdentitySupervisor` does the issuing; everything
/// else reads this table or asks it for an issuance.
package final class IdentityTable: Sendable {
  package typealias Outcome = Result<Void, CertificateAuthorityError>

  struct Entry {
    var lifecycle: IdentityLifecycle
    let cache: SecretCache
    /// Callers waiting for the issuance in flight.
    var waiters: [Int: Waiter] = [:]
    /// Callers waiting for the issuance asked for but not started.
    var pendingWaiters: [Int: Waiter] = [:]
    /// SHA-256 of forwarded tokens the CA has accepted for this identity.
    var provenTokens: Set<Data> = []
  }

  struct State {
    var entries: [SPIFFEID: Entry] = [:]
    var template: IdentitySettings
    var idleTimeout: Duration
    var nextWaiter = 0
    var isClosed = false
  }

  /// A piece of work for the supervisor.
  struct Assignment {
    let identity: SPIFFEID
    let work: IdentityLifecycle.Work
    let settings: IdentitySettings
    let cache: SecretCache
  }

  package let pinnedIdentity: SPIFFEID
  package let pinnedCache: SecretCache
  /// The secrets every identity serves alike (trust, file secrets, on-demand certificates),
  /// stored once and joined with each identity's SVID by its cache.
  package let node: NodeSecrets
  let wake: WakeSignal
  /// The trust's deadlines, made on the supervisor's timer like the identities' own.
  package let trustSchedule: TrustSchedule
  private let state: Mutex<State>
  /// The trust bundles installed for every identity (see `installTrustBundle` and
  /// `installFederatedBundles`). Also serializes issuances with them, so an issuance never puts
  /// back an older bundle.
  let trust = Mutex(TrustInstallation())

  package init(pinned identity: SPIFFEID, template: IdentitySettings, idleTimeout: Duration, now: Date) {
    let node = NodeSecrets()
    let cache = SecretCache(node: node)
    var state = State(template: template, idleTimeout: idleTimeout)
    state.entries[identity] = Entry(
      lifecycle: IdentityLifecycle(
        identity: identity, settings: template, credential: .agent, isPinned: true, now: now),
      cache: cache
    )
    self.state = Mutex(state)
    let wake = WakeSignal()
    self.wake = wake
    self.trustSchedule = TrustSchedule(wake: wake)
    self.pinnedIdentity = identity
    self.pinnedCache = cache
    self.node = node
  }

  // MARK: - Reading

  package var template: IdentitySettings { self.state.withLock { $0.template } }
  package var idleTimeout: Duration { self.state.withLock { $0.idleTimeout } }

  /// The identities held, the pinned one first, then by name.
  package var identities: [SPIFFEID] {
    self.state.withLock { state in
      [self.pinnedIdentity]
        + state.entries.keys.filter { $0 != self.pinnedIdentity }.sorted { $0.description < $1.description }
    }
  }

  package func cache(for identity: SPIFFEID) -> SecretCache? {
    self.state.withLock { $0.entries[identity]?.cache }
  }

  package func lifecycle(of identity: SPIFFEID) -> IdentityLifecycle? {
    self.state.withLock { $0.entries[identity]?.lifecycle }
  }

  /// Every row, the pinned one first.
  package func snapshot() -> [IdentitySnapshot] {
    let rows = self.state.withLock { state in
      state.entries.values.map { ($0.lifecycle, $0.cache) }
    }
    return rows.map { lifecycle, cache in
      IdentitySnapshot(
        identity: lifecycle.identity, isPinned: lifecycle.isPinned, phase: lifecycle.phase, served: cache.current,
        renewAt: lifecycle.renewAt, retryAt: lifecycle.retryAt, streams: lifecycle.streams,
        idleSince: lifecycle.idleSince)
    }.sorted { ($0.isPinned ? 0 : 1, $0.identity.description) < ($1.isPinned ? 0 : 1, $1.identity.description) }
  }

  // MARK: - Streams

  /// Counts a stream of `identity`, adding the identity (with `credential` for its requests) if
  /// it is not held yet, and returns its cache.
  package func openStream(_ identity: SPIFFEID, credential: CACredential, now: Date) -> SecretCache {
    self.state.withLock { state in
      // One lookup of the identity (hashing its URI) for a known identity: every stream opens here.
      let index: Dictionary<SPIFFEID, Entry>.Index
      if let found = state.entries.index(forKey: identity) {
        index = found
      } else {
        state.entries[identity] = Entry(
          lifecycle: IdentityLifecycle(
            identity: identity, settings: state.template, credential: credential, isPinned: false, now: now),
          cache: SecretCache(node: self.node)
        )
        index = state.entries.index(forKey: identity)!
      }
      state.entries.values[index].lifecycle.streamOpened()
      return state.entries.values[index].cache
    }
  }

  package func closeStream(_ identity: SPIFFEID, now: Date) {
    let becameIdle = self.state.withLock { state -> Bool in
      guard let index = state.entries.index(forKey: identity) else { return false }
      state.entries.values[index].lifecycle.streamClosed(now: now)
      return state.entries.values[index].lifecycle.streams == 0 && !state.entries.values[index].lifecycle.isPinned
    }
    // Only an identity that became idle has a new deadline (its eviction); waking the supervisor
    // for every closed stream would cost every FetchSecrets a context switch.
    if becameIdle { self.wake.signal() }
  }

  // MARK: - Issuance requests

  /// What a caller needs before it is served.
  package enum Readiness: Sendable, Equatable {
    /// The identity is issued or kept fresh, and the caller's token (if any) is proven.
    case ready
    /// The identity is not held any more: it was dropped.
    case dropped
    /// An issuance is in flight: wait for it.
    case issuing
    /// Nothing is in flight: one must be asked for.
    case needsIssuance
  }

  /// Whether a caller of `identity` can be served; `tokenDigest` names a forwarded token that the
  /// CA must have accepted first.
  package func readiness(of identity: SPIFFEID, tokenDigest: Data?) -> Readiness {
    self.state.withLock { state in
      guard let entry = state.entries[identity] else { return .dropped }
      let needsProof = tokenDigest.map { !entry.provenTokens.contains($0) } ?? false
      if entry.lifecycle.isScheduled, !needsProof { return .ready }
      return entry.lifecycle.isIssuing ? .issuing : .needsIssuance
    }
  }

  /// Waits for an issuance of `identity`: the one in flight if `joinInFlight`, else a new one
  /// carrying `credential` (or the identity's own). `nil` if the identity is not held.
  package func issue(
    _ identity: SPIFFEID, credential: CACredential? = nil, retries: Bool, joinInFlight: Bool
  ) async -> Outcome? {
    let id = self.state.withLock { state -> Int in
      state.nextWaiter += 1
      return state.nextWaiter
    }
    let outcome: Outcome? = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Outcome?, Never>) in
        let registered = self.state.withLock { state -> Outcome?? in
          guard !state.isClosed else { return .some(.failure(Self.closedError)) }
          guard Task.isCancelled == false else { return .some(.failure(Self.cancelledError)) }
          guard var entry = state.entries[identity] else { return .some(nil) }
          let waiter = Waiter { continuation.resume(returning: $0) }
          if joinInFlight, entry.lifecycle.isIssuing {
            entry.waiters[id] = waiter
          } else {
            entry.lifecycle.request(credential: credential, retries: retries)
            entry.pendingWaiters[id] = waiter
          }
          state.entries[identity] = entry
          return .none
        }
        if let immediate = registered {
          continuation.resume(returning: immediate)
        } else {
          self.wake.signal()
        }
      }
    } onCancel: {
      self.resumeWaiter(id, of: identity, with: .failure(Self.cancelledError))
    }
    return outcome
  }

  /// Installs reloaded settings for every identity. Returns the identities whose certificates
  /// must be replaced at once (a new lifetime or key type).
  func installSettings(_ template: IdentitySettings, idleTimeout: Duration) -> [SPIFFEID] {
    let reissue = self.state.withLock { state -> [SPIFFEID] in
      state.template = template
      state.idleTimeout = idleTimeout
      return state.entries.keys.filter { state.entries[$0]!.lifecycle.reconfigure(template) }
    }
    self.wake.signal()
    return reissue
  }

  // MARK: - For the supervisor

  /// Takes the work due at `now`, for every identity or only `identity`.
  func takeWork(now: Date, only identity: SPIFFEID? = nil) -> [Assignment] {
    self.state.withLock { state in
      var assignments: [Assignment] = []
      let identities = identity.map { [$0] } ?? Array(state.entries.keys)
      for identity in identities {
        guard var entry = state.entries[identity] else { continue }
        var evicted = false
        while !evicted, let work = Self.nextWork(of: &entry, now: now, idleTimeout: state.idleTimeout) {
          assignments.append(
            Assignment(identity: identity, work: work, settings: entry.lifecycle.settings, cache: entry.cache))
          evicted = work == .evict
        }
        state.entries[identity] = evicted ? nil : entry
      }
      return assignments
    }
  }

  /// The entry's next work; an issuance started for a request takes over the request's waiters.
  private static func nextWork(of entry: inout Entry, now: Date, idleTimeout: Duration) -> IdentityLifecycle.Work? {
    let hadPending = entry.lifecycle.pending != nil
    let work = entry.lifecycle.nextWork(now: now, idleTimeout: idleTimeout)
    if case .issue = work, hadPending, entry.lifecycle.pending == nil {
      entry.waiters.merge(entry.pendingWaiters) { first, _ in first }
      entry.pendingWaiters = [:]
    }
    return work
  }

  /// The earliest time any identity, or a scheduled change of the trust, needs attention.
  func nextDeadline() -> Date? {
    let identities = self.state.withLock { state in
      state.entries.values.compactMap { $0.lifecycle.nextDeadline(idleTimeout: state.idleTimeout) }.min()
    }
    return [identities, self.trustSchedule.nextDeadline].compactMap { $0 }.min()
  }

  /// Records the outcome of an issuance the supervisor started, wakes its waiters, and returns
  /// the identity's lifecycle after it (`nil` if the identity is gone).
  @discardableResult
  func finish(
    _ identity: SPIFFEID,
    _ result: Result<IdentityLifecycle.Validity, CertificateAuthorityError>,
    credential: CACredential,
    retries: Bool,
    now: Date,
    sample: Double
  ) -> IdentityLifecycle? {
    let (waiters, lifecycle) = self.state.withLock { state -> ([Waiter], IdentityLifecycle?) in
      guard var entry = state.entries[identity] else { return ([], nil) }
      switch result {
      case .success(let validity):
        entry.lifecycle.issued(validity, credential: credential, jitterSample: sample * 2 - 1)
        if case .forwardedToken(let token) = credential {
          entry.provenTokens.insert(Self.digest(token))
        }
      case .failure(let error):
        entry.lifecycle.issuanceFailed(error, retries: retries, now: now, sample: sample)
      }
      let waiters = Array(entry.waiters.values)
      entry.waiters = [:]
      state.entries[identity] = entry
      return (waiters, entry.lifecycle)
    }
    let outcome = result.map { _ in () }
    waiters.forEach { $0.resume(outcome) }
    self.wake.signal()
    return lifecycle
  }

  /// Refuses every waiting and future request: the supervisor has stopped.
  func close() {
    let waiters = self.state.withLock { state -> [Waiter] in
      state.isClosed = true
      var waiters: [Waiter] = []
      for identity in state.entries.keys {
        waiters += state.entries[identity]!.waiters.values
        waiters += state.entries[identity]!.pendingWaiters.values
        state.entries[identity]!.waiters = [:]
        state.entries[identity]!.pendingWaiters = [:]
      }
      return waiters
    }
    waiters.forEach { $0.resume(.failure(Self.closedError)) }
  }

  /// The SHA-256 of a forwarded token, as the table remembers tokens the CA accepted.
  package static func digest(_ token: String) -> Data {
    Data(SHA256.hash(data: Data(token.utf8)))
  }

  private func resumeWaiter(_ id: Int, of identity: SPIFFEID, with outcome: Outcome) {
    let waiter = self.state.withLock { state -> Waiter? in
      state.entries[identity]?.waiters.removeValue(forKey: id)
        ?? state.entries[identity]?.pendingWaiters.removeValue(forKey: id)
    }
    waiter?.resume(outcome)
  }

  private static let closedError = CertificateAuthorityError(.unavailable, "the agent is shutting down")
  private static let cancelledError = CertificateAuthorityError(.unavailable, "the request was cancelled")
}
