import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The JWT-SVIDs Envoy asks for over SDS (`jwt-svid:<audience>`): one token per identity and
/// audience that a stream holds, from the Workload API's `JWTSVIDSource` (so the same token its
/// `FetchJWTSVID` answers; signed by the agent, or by the CA in fetch mode), served in the identity's cache and signed again at half its
/// life, so that open streams are pushed a fresh token long before the old one expires. A token
/// no stream holds is dropped at once. One service, one timer.
package final class JWTSVIDTokens<C: Clock>: Service, JWTSVIDProvider, CustomStringConvertible, Sendable
where C.Duration == Duration {
  /// One identity and one audience that streams hold.
  package struct Subject: Sendable, Hashable {
    package let identity: SPIFFEID
    package let audience: JWTAudience
  }

  package struct Entry: Sendable {
    /// The token served; nil until the first signing succeeds.
    package fileprivate(set) var svid: JWTSVID?
    /// Streams holding it.
    package fileprivate(set) var holders = 0
    /// When it is signed next.
    package fileprivate(set) var dueAt: Date
    package fileprivate(set) var lastError: String?
  }

  private struct State {
    var entries: [Subject: Entry] = [:]
    /// What each stream holds, and whose.
    var holders: [UInt64: (identity: SPIFFEID, audiences: Set<JWTAudience>)] = [:]
    /// Where each identity's tokens are served, while a stream of it holds one.
    var caches: [SPIFFEID: SecretCache] = [:]

    func audiences(of identity: SPIFFEID) -> Int {
      self.entries.keys.reduce(0) { $1.identity == identity ? $0 + 1 : $0 }
    }
  }

  /// The most audiences one identity's streams may hold together; a stream asking for more is
  /// refused (RESOURCE_EXHAUSTED).
  package var maximumAudiencesPerIdentity: Int { 64 }
  /// How long after a failed signing it is tried again.
  static var retryDelay: TimeInterval { 5 }
  /// How long after the CA answered that it signs no JWT-SVIDs it is asked again.
  static var unimplementedRetryDelay: TimeInterval { 60 }

  package let issuer: any JWTSVIDSource
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  private let state = Mutex(State())
  private let wake = WakeSignal()

  package init(issuer: any JWTSVIDSource, clock: C, now: @escaping @Sendable () -> Date, logger: Logger) {
    self.issuer = issuer
    self.clock = clock
    self.now = now
    self.logger = logger
  }

  package var description: String { "JWTSVIDTokens" }

  /// Every identity and audience held, with its token (once signed).
  package var entries: [Subject: Entry] { self.state.withLock { $0.entries } }

  /// Takes the stream's holds: new audiences are signed at once, those it let go are dropped
  /// where no other stream holds them. Returns the audiences refused because the identity's
  /// streams would hold more than `maximumAudiencesPerIdentity`; the stream keeps its other holds.
  @discardableResult
  package func hold(
    _ audiences: Set<JWTAudience>, by holder: UInt64, identity: SPIFFEID, cache: SecretCache
  ) -> [JWTAudience] {
    let now = self.now()
    let (refused, added) = self.state.withLock { state -> ([JWTAudience], Bool) in
      let previous = state.holders[holder]?.audiences ?? []
      guard previous != audiences else { return ([], false) }
      for audience in previous.subtracting(audiences) {
        Self.drop(Subject(identity: identity, audience: audience), from: &state)
      }
      var held = previous.intersection(audiences)
      var refused: [JWTAudience] = []
      var added = false
      for audience in audiences.subtracting(previous).sorted() {
        let subject = Subject(identity: identity, audience: audience)
        if state.entries[subject] == nil {
          guard state.audiences(of: identity) < self.maximumAudiencesPerIdentity else {
            refused.append(audience)
            continue
          }
          state.entries[subject] = Entry(dueAt: now)
          added = true
        }
        state.entries[subject]!.holders += 1
        held.insert(audience)
      }
      state.holders[holder] = held.isEmpty ? nil : (identity, held)
      if !held.isEmpty { state.caches[identity] = cache }
      Self.install(identity, in: &state)
      return (refused, added)
    }
    if added {
      self.signDueAtOnce()
      self.wake.signal()
    }
    return refused
  }

  package func release(_ holder: UInt64) {
    self.state.withLock { state in
      guard let (identity, audiences) = state.holders.removeValue(forKey: holder) else { return }
      for audience in audiences {
        Self.drop(Subject(identity: identity, audience: audience), from: &state)
      }
      Self.install(identity, in: &state)
    }
  }

  package func noticeExpired() {
    self.wake.signal()
  }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      let next = self.state.withLock { $0.entries.values.map(\.dueAt).min() }
      return next.map { self.clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now())))) }
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer {
        await self.performDueWork()
      }
    }
  }

  /// Signs what is due and serves it; a token is due at half its life. What only the CA can
  /// sign is awaited, one token after another.
  func performDueWork() async {
    let now = self.now()
    for subject in self.signDueAtOnce() {
      let result: Result<JWTSVID, JWTSVIDFailure>
      do throws(JWTSVIDFailure) {
        result = .success(
          try await self.issuer.svid(
            for: subject.identity, audience: [subject.audience.value], credential: nil, now: now))
      } catch {
        result = .failure(error)
      }
      self.serve([subject: result], now: now)
    }
  }

  /// Signs and serves what is due and can be signed at once; returns what must wait for the CA.
  @discardableResult
  func signDueAtOnce() -> [Subject] {
    let now = self.now()
    let due = self.state.withLock { $0.entries.filter { $0.value.dueAt <= now }.map(\.key) }
    guard !due.isEmpty else { return [] }
    var signed: [Subject: Result<JWTSVID, JWTSVIDFailure>] = [:]
    var waiting: [Subject] = []
    for subject in due {
      if let result = self.issuer.svidAtOnce(for: subject.identity, audience: [subject.audience.value], now: now) {
        signed[subject] = result
      } else {
        waiting.append(subject)
      }
    }
    self.serve(signed, now: now)
    return waiting
  }

  private func serve(_ signed: [Subject: Result<JWTSVID, JWTSVIDFailure>], now: Date) {
    guard !signed.isEmpty else { return }
    let renewed = self.state.withLock { state -> [(Subject, JWTSVID)] in
      var renewed: [(Subject, JWTSVID)] = []
      for (subject, result) in signed where state.entries[subject] != nil {
        switch result {
        case .success(let svid):
          if state.entries[subject]!.svid?.token != svid.token { renewed.append((subject, svid)) }
          state.entries[subject]!.svid = svid
          state.entries[subject]!.lastError = nil
          state.entries[subject]!.dueAt = svid.issuedAt.addingTimeInterval(
            svid.expiresAt.timeIntervalSince(svid.issuedAt) / 2)
        case .failure(let failure):
          state.entries[subject]!.lastError = failure.message
          // A CA without JWT-SVIDs (istiod) is asked again every minute, not every 5 s.
          state.entries[subject]!.dueAt = now.addingTimeInterval(
            failure.code == .unimplemented ? Self.unimplementedRetryDelay : Self.retryDelay)
        }
      }
      for identity in Set(signed.keys.map(\.identity)) {
        Self.install(identity, in: &state)
      }
      return renewed
    }
    for (subject, svid) in renewed {
      self.logger.info(
        "signed a JWT-SVID for SDS",
        metadata: [
          "identity": "\(subject.identity)", "audience": "\(subject.audience)",
          "expires_at": "\(svid.expiresAt.formatted(.iso8601))",
        ])
    }
    for case (let subject, .failure(let failure)) in signed {
      self.logger.error(
        "could not sign a JWT-SVID for SDS; retrying",
        metadata: [
          "identity": "\(subject.identity)", "audience": "\(subject.audience)", "error": "\(failure)",
          "retry_in": "\(failure.code == .unimplemented ? "60s" : "5s")",
        ])
    }
  }

  private static func drop(_ subject: Subject, from state: inout State) {
    guard var entry = state.entries[subject] else { return }
    entry.holders -= 1
    state.entries[subject] = entry.holders > 0 ? entry : nil
  }

  /// Serves the identity's signed tokens in its cache, under the lock: two changes never reach
  /// the cache in the other order. The cache is let go once no stream of the identity holds one.
  private static func install(_ identity: SPIFFEID, in state: inout State) {
    guard let cache = state.caches[identity] else { return }
    var svids: [JWTAudience: JWTSVID] = [:]
    for (subject, entry) in state.entries where subject.identity == identity {
      if let svid = entry.svid { svids[subject.audience] = svid }
    }
    cache.updateJWTSVIDs(svids)
    if !state.entries.keys.contains(where: { $0.identity == identity }) { state.caches[identity] = nil }
  }
}
