import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The identities the agent serves: its own (kept by the agent's rotator) and, in node-agent
/// mode, one per workload that calls — each with its own key, certificate and rotator, shared by
/// all of that workload's streams, created on its first stream and dropped after
/// `idleTimeout` without one.
public final class WorkloadRegistry: Service, Sendable {
  public typealias Limits = CallerLimits

  private typealias Issuance = Task<Result<Void, CertificateAuthorityError>, Never>

  private struct Entry {
    let cache: SecretCache
    let rotator: SVIDRotator<ContinuousClock>
    /// Finished when the identity is dropped, which stops its rotator.
    var evicted: AsyncStream<Void>.Continuation?
    var streams = 0
    var idleSince: Date?
    var streamBucket: TokenBucket
    var certificateBucket: TokenBucket
    var rotating = false
    var issuing: Issuance?
    /// SHA-256 of forwarded tokens the CA has accepted for this identity.
    var provenTokens: Set<Data> = []
  }

  private struct State {
    var entries: [SPIFFEID: Entry] = [:]
    /// Streams of callers identified as the agent's own identity.
    var agentStreamBucket: TokenBucket?
    var attestor: CallerAttestor
    var template: SVIDRotatorConfiguration
    var limits: Limits
  }

  private let agentIdentity: SPIFFEID
  private let agentCache: SecretCache
  private let authority: any CertificateAuthority
  private let counters: AgentCounters
  private let logger: Logger
  private let now: @Sendable () -> Date
  private let state: Mutex<State>
  private let rotators: AsyncStream<(SVIDRotator<ContinuousClock>, AsyncStream<Void>)>
  private let newRotator: AsyncStream<(SVIDRotator<ContinuousClock>, AsyncStream<Void>)>.Continuation

  /// - Parameter template: the settings of every workload rotator, apart from its identity.
  public init(
    attestor: CallerAttestor,
    agentIdentity: SPIFFEID,
    agentCache: SecretCache,
    template: SVIDRotatorConfiguration,
    authority: any CertificateAuthority,
    counters: AgentCounters,
    limits: Limits = Limits(),
    logger: Logger,
    now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.state = Mutex(State(attestor: attestor, template: template, limits: limits))
    self.agentIdentity = agentIdentity
    self.agentCache = agentCache
    self.authority = authority
    self.counters = counters
    self.logger = logger
    self.now = now
    (self.rotators, self.newRotator) = AsyncStream.makeStream()
  }

  public var attestor: CallerAttestor { self.state.withLock { $0.attestor } }
  public var limits: Limits { self.state.withLock { $0.limits } }
  /// The settings of every workload rotator, apart from its identity and credential.
  public var template: SVIDRotatorConfiguration { self.state.withLock { $0.template } }

  /// Applies reloaded settings: new rules and token keys for new streams, new limits (every
  /// caller starts with a full bucket at the new rate), and new
  /// rotator settings for every workload (a new lifetime or key type rotates each one now).
  /// Streams already open keep the identity they were given.
  public func update(attestor: CallerAttestor, template: SVIDRotatorConfiguration, limits: Limits) async {
    let now = self.now()
    let rotators = self.state.withLock { state in
      state.attestor = attestor
      state.template = template
      if state.limits != limits {
        state.limits = limits
        state.agentStreamBucket = nil
        for identity in state.entries.keys {
          state.entries[identity]?.streamBucket = TokenBucket(rate: limits.streamRate, now: now)
          state.entries[identity]?.certificateBucket = TokenBucket(rate: limits.certificateRate, now: now)
        }
      }
      return state.entries.values.map(\.rotator)
    }
    for rotator in rotators {
      var settings = template
      settings.identity = rotator.configuration.identity
      settings.credential = rotator.configuration.credential
      do {
        try await rotator.update(settings)
      } catch {
        self.logger.error(
          "the new settings are in force, but the rotation they call for failed",
          metadata: ["identity": "\(settings.identity)", "error": "\(error)"])
      }
    }
  }

  /// Rotates a workload identity's certificate now; `false` if the identity is not held.
  public func rotate(_ identity: SPIFFEID) async throws(CertificateAuthorityError) -> Bool {
    guard let rotator = self.state.withLock({ $0.entries[identity]?.rotator }) else { return false }
    try await rotator.rotate()
    return true
  }

  /// The workload identities held now (not the agent's own).
  public var workloadIdentities: [SPIFFEID] {
    self.state.withLock { $0.entries.keys.sorted { $0.description < $1.description } }
  }

  public func cache(for identity: SPIFFEID) -> SecretCache? {
    identity == self.agentIdentity ? self.agentCache : self.state.withLock { $0.entries[identity]?.cache }
  }

  /// Identifies the caller and returns its secrets, issuing its first certificate if needed.
  public func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
    let caller: Caller
    do {
      caller = try await self.attestor.attest(evidence)
    } catch {
      throw self.refuse(error, caller: nil)
    }
    if caller.identity == self.agentIdentity {
      guard caller.isVerified else {
        throw self.refuse(
          CallerRefusal(
            .permissionDenied, "a forwarded token may not name the agent's own identity \(caller.identity)"),
          caller: caller
        )
      }
      if self.attestor.mode != .agent {
        try self.takeAgentStream(caller)
      }
      return SecretLease(caller: caller, cache: self.agentCache, onRelease: {})
    }
    let cache: SecretCache
    do {
      cache = try self.openStream(caller)
    } catch {
      throw self.refuse(error, caller: caller)
    }
    do {
      try await self.ensureIssued(caller)
    } catch {
      self.closeStream(caller.identity)
      throw self.refuse(error, caller: caller)
    }
    return SecretLease(caller: caller, cache: cache, onRelease: { [weak self] in self?.closeStream(caller.identity) })
  }

  /// Drops identities that have had no stream for `limits.idleTimeout` as of `now`.
  @discardableResult
  public func evictIdle(now: Date) -> [SPIFFEID] {
    let evicted = self.state.withLock { state -> [(SPIFFEID, Entry)] in
      let timeout = state.limits.idleTimeout.seconds
      let idle = state.entries.filter { _, entry in
        entry.streams == 0 && entry.issuing == nil
          && entry.idleSince.map { now.timeIntervalSince($0) >= timeout } == true
      }
      for (identity, _) in idle { state.entries[identity] = nil }
      return Array(idle)
    }
    for (identity, entry) in evicted {
      entry.evicted?.finish()
      self.logger.info("dropped an idle workload identity", metadata: ["identity": "\(identity)"])
    }
    return evicted.map(\.0)
  }

  public func run() async throws {
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask {
          while (try? await Task.sleep(for: max(Duration.seconds(1), self.limits.idleTimeout / 4))) != nil {
            self.evictIdle(now: self.now())
          }
        }
        group.addTask {
          await withDiscardingTaskGroup { rotations in
            for await (rotator, evicted) in self.rotators {
              rotations.addTask {
                await withTaskGroup(of: Void.self) { race in
                  race.addTask { try? await rotator.run() }
                  race.addTask { for await _ in evicted {} }
                  await race.next()
                  race.cancelAll()
                }
              }
            }
          }
        }
      }
    }
  }

  // MARK: - Streams

  private func takeAgentStream(_ caller: Caller) throws(CallerRefusal) {
    let now = self.now()
    let wait = self.state.withLock { state in
      let rate = state.limits.streamRate
      var bucket = state.agentStreamBucket ?? TokenBucket(rate: rate, now: now)
      defer { state.agentStreamBucket = bucket }
      return bucket.take(now: now).map { self.streamRateRefusal(caller, rate: rate, wait: $0) }
    }
    if let wait {
      throw self.refuse(wait, caller: caller)
    }
  }

  private func openStream(_ caller: Caller) throws(CallerRefusal) -> SecretCache {
    let now = self.now()
    let result = self.state.withLock { state -> Result<SecretCache, CallerRefusal> in
      if state.entries[caller.identity] == nil {
        var settings = state.template
        settings.identity = caller.identity
        settings.credential = caller.credential
        let cache = SecretCache()
        state.entries[caller.identity] = Entry(
          cache: cache,
          rotator: SVIDRotator(
            configuration: settings, authority: self.authority, cache: cache, counters: self.counters,
            clock: ContinuousClock(), now: self.now, logger: self.logger),
          streamBucket: TokenBucket(rate: state.limits.streamRate, now: now),
          certificateBucket: TokenBucket(rate: state.limits.certificateRate, now: now)
        )
      }
      if let wait = state.entries[caller.identity]!.streamBucket.take(now: now) {
        return .failure(self.streamRateRefusal(caller, rate: state.limits.streamRate, wait: wait))
      }
      state.entries[caller.identity]!.streams += 1
      state.entries[caller.identity]!.idleSince = nil
      return .success(state.entries[caller.identity]!.cache)
    }
    return try result.get()
  }

  private func closeStream(_ identity: SPIFFEID) {
    let now = self.now()
    self.state.withLock { state in
      guard var entry = state.entries[identity] else { return }
      entry.streams -= 1
      if entry.streams == 0 { entry.idleSince = now }
      state.entries[identity] = entry
    }
  }

  private func streamRateRefusal(_ caller: Caller, rate: Rate, wait: Duration) -> CallerRefusal {
    CallerRefusal(
      .rateLimited, "\(caller.identity) opened more than \(rate) streams; retry in \(DurationParser.format(wait))")
  }

  // MARK: - Issuance

  /// Makes sure the caller's identity has had its first issuance, and that a forwarded token
  /// nobody verified has been accepted by the CA.
  private func ensureIssued(_ caller: Caller) async throws(CallerRefusal) {
    let tokenDigest: Data? =
      if case .forwardedToken(let token) = caller.credential, !caller.isVerified {
        Data(SHA256.hash(data: Data(token.utf8)))
      } else {
        nil
      }
    while let issuance = try self.pendingIssuance(caller, tokenDigest: tokenDigest) {
      // The issuance records its own outcome before it returns, so the next look at the state
      // sees it whichever stream started it.
      if case .failure(let error) = await issuance.value {
        try self.handleFailure(error, caller: caller, tokenDigest: tokenDigest)
      }
    }
  }

  /// The issuance this caller must wait for (one in flight, or a new one), or `nil` if its
  /// identity is served already.
  private func pendingIssuance(_ caller: Caller, tokenDigest: Data?) throws(CallerRefusal) -> Issuance? {
    let now = self.now()
    let result = self.state.withLock { state -> Result<Issuance?, CallerRefusal> in
      guard var entry = state.entries[caller.identity] else {
        return .failure(CallerRefusal(.unavailable, "\(caller.identity) was dropped; reconnect"))
      }
      let needsProof = tokenDigest.map { !entry.provenTokens.contains($0) } ?? false
      guard !entry.rotating || needsProof else { return .success(nil) }
      if let issuing = entry.issuing { return .success(issuing) }
      if let wait = entry.certificateBucket.take(now: now) {
        return .failure(
          CallerRefusal(
            .rateLimited,
            "\(caller.identity) asked for more than \(state.limits.certificateRate) certificates; retry in \(DurationParser.format(wait))"
          ))
      }
      let rotator = entry.rotator
      let credential = caller.credential
      let issuance = Issuance { () async -> Result<Void, CertificateAuthorityError> in
        let result: Result<Void, CertificateAuthorityError>
        do throws(CertificateAuthorityError) {
          try await rotator.rotate(credential: credential)
          result = .success(())
        } catch {
          result = .failure(error)
        }
        self.record(result, of: caller.identity, tokenDigest: tokenDigest)
        return result
      }
      entry.issuing = issuance
      state.entries[caller.identity] = entry
      return .success(issuance)
    }
    return try result.get()
  }

  /// Clears the issuance in flight, remembers a token the CA accepted, and starts the identity's
  /// rotator once it has a certificate (or, for a verified caller, keeps trying to get one).
  private func record(_ result: Result<Void, CertificateAuthorityError>, of identity: SPIFFEID, tokenDigest: Data?) {
    let keepsTrying: Bool
    if case .failure(let error) = result {
      keepsTrying = error.code != .refused && tokenDigest == nil
    } else {
      keepsTrying = true
    }
    let started = self.state.withLock { state -> (SVIDRotator<ContinuousClock>, AsyncStream<Void>)? in
      guard var entry = state.entries[identity] else { return nil }
      entry.issuing = nil
      if case .success = result, let tokenDigest {
        entry.provenTokens.insert(tokenDigest)
      }
      var started: (SVIDRotator<ContinuousClock>, AsyncStream<Void>)?
      if keepsTrying, !entry.rotating {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        entry.rotating = true
        entry.evicted = continuation
        started = (entry.rotator, stream)
      }
      state.entries[identity] = entry
      return started
    }
    if let started {
      self.newRotator.yield(started)
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
        "the CA refused a certificate for \(caller.identity): \(error.message)")
    default:
      guard tokenDigest == nil else {
        throw CallerRefusal(
          .unavailable, "the forwarded token could not be verified by the CA: \(error.message); retry shortly")
      }
      // A verified caller waits on its stream while the rotator keeps trying.
      self.logger.error(
        "could not issue a workload's first certificate; retrying",
        metadata: ["identity": "\(caller.identity)", "error": "\(error)"])
    }
  }

  private func refuse(_ refusal: CallerRefusal, caller: Caller?) -> CallerRefusal {
    self.counters.increment(.callersRefused, labels: [("reason", refusal.code.rawValue)])
    self.logger.warning(
      "refused an SDS caller",
      metadata: [
        "status": "\(refusal.code.rawValue)", "reason": "\(refusal.message)",
        "caller": "\(caller.map(\.description) ?? "-")",
      ])
    return refusal
  }
}
