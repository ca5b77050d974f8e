import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// JWT-SVIDs signed by the CA a fetch-mode agent follows (`ca serve`): each token is asked for
/// when none is kept at less than half its life, verified against the CA's JWT bundle before it
/// is served, and kept per identity and audience set. The bundle is fetched at start, again every
/// `refreshInterval` (sooner after a failure), and at once when a token names a key it does not
/// hold yet; it is published as the node's own JWT bundle (`NodeSecrets`), which pushes every
/// `FetchJWTBundles` stream and is what `ValidateJWTSVID` checks against. One service, one timer.
package final class FetchedJWTSVIDIssuer<C: Clock>: JWTSVIDSource, Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  private struct Key: Hashable {
    let identity: SPIFFEID
    let audience: [String]
  }

  private struct State {
    var bundle: JWTBundle?
    var issued: [Key: JWTSVID] = [:]
    /// When the bundle is fetched next.
    var refreshAt: Date
    var failing = false
  }

  private let authority: any JWTSVIDAuthority
  package let trustDomain: TrustDomainName
  private let node: NodeSecrets?
  private let credential: @Sendable (SPIFFEID) -> CACredential
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  private let state: Mutex<State>
  private let wake = WakeSignal()

  /// How often the CA's JWT bundle is fetched again, so that a key it prepares for its next
  /// rotation is known long before it signs.
  package let refreshInterval: Duration
  /// How long after a failed fetch of the bundle it is tried again.
  package static var retryDelay: Duration { .seconds(5) }
  /// Tokens kept (identities × audience sets); past it, the cache starts over.
  static var maximumKept: Int { 4096 }

  /// - Parameters:
  ///   - credential: how an identity is known to the CA when the caller's credential is not at
  ///     hand (the `jwt-svid:` SDS secrets): the agent's own, or impersonation for a workload.
  ///   - node: where the CA's bundle is published as the own trust domain's JWT bundle.
  package init(
    authority: any JWTSVIDAuthority, trustDomain: TrustDomainName, publishingTo node: NodeSecrets? = nil,
    credential: @escaping @Sendable (SPIFFEID) -> CACredential, refreshInterval: Duration = .seconds(60),
    clock: C, now: @escaping @Sendable () -> Date, logger: Logger
  ) {
    self.authority = authority
    self.trustDomain = trustDomain
    self.node = node
    self.credential = credential
    self.refreshInterval = refreshInterval
    self.clock = clock
    self.now = now
    self.logger = logger
    self.state = Mutex(State(refreshAt: now()))
  }

  package var description: String { "FetchedJWTSVIDIssuer(\(self.trustDomain))" }

  // MARK: - JWTSVIDSource

  package var ownBundle: JWTBundle? { self.state.withLock { $0.bundle } }

  package func svidAtOnce(for identity: SPIFFEID, audience: [String], now: Date) -> Result<JWTSVID, JWTSVIDFailure>? {
    self.kept(Key(identity: identity, audience: Self.normalized(audience)), now: now).map { .success($0) }
  }

  package func svid(
    for identity: SPIFFEID, audience: [String], credential: CACredential?, now: Date
  ) async throws(JWTSVIDFailure) -> JWTSVID {
    let key = Key(identity: identity, audience: Self.normalized(audience))
    guard !key.audience.isEmpty else { throw JWTSVIDFailure(.invalidRequest, "a JWT-SVID needs at least one audience") }
    if let kept = self.kept(key, now: now) { return kept }
    let token = try await self.authority.signJWTSVID(
      for: identity, audience: key.audience, credential: credential ?? self.credential(identity))
    let svid = try await self.verified(token, identity: identity, audience: key.audience)
    self.state.withLock { state in
      if state.issued.count >= Self.maximumKept { state.issued.removeAll(keepingCapacity: true) }
      state.issued[key] = svid
    }
    return svid
  }

  /// The token kept for `key` while it is at less than half its life and its key is still in the
  /// bundle.
  private func kept(_ key: Key, now: Date) -> JWTSVID? {
    self.state.withLock { state in
      guard let kept = state.issued[key], state.bundle?.key(named: kept.kid) != nil, now >= kept.issuedAt,
        now < kept.issuedAt.addingTimeInterval(kept.expiresAt.timeIntervalSince(kept.issuedAt) / 2)
      else { return nil }
      return kept
    }
  }

  private static func normalized(_ audience: [String]) -> [String] {
    Array(Set(audience)).sorted()
  }

  // MARK: - Verifying what the CA signed

  /// The CA's token checked as `ValidateJWTSVID` would check it, for every audience asked, and
  /// naming `identity`; a key the bundle lacks makes it fetch the bundle once more.
  private func verified(_ token: String, identity: SPIFFEID, audience: [String]) async throws(JWTSVIDFailure)
    -> JWTSVID
  {
    do throws(JWTSVIDFailure) {
      return try self.check(token, identity: identity, audience: audience, refetched: false)
    } catch {
      guard error.code == .unknownKey || error.code == .unknownTrustDomain else { throw error }
      try await self.refreshBundle()
      return try self.check(token, identity: identity, audience: audience, refetched: true)
    }
  }

  private func check(
    _ token: String, identity: SPIFFEID, audience: [String], refetched: Bool
  ) throws(JWTSVIDFailure) -> JWTSVID {
    let validator = self.validator
    var validated: JWTSVIDValidator.Validated?
    do throws(JWTSVIDFailure) {
      for one in audience {
        validated = try validator.validate(token, audience: one, now: self.now())
      }
    } catch {
      // A key not known yet is fetched once before the token is refused.
      if !refetched, error.code == .unknownKey || error.code == .unknownTrustDomain { throw error }
      self.logger.error("the CA's JWT-SVID does not verify; not served", metadata: ["reason": "\(error.message)"])
      throw JWTSVIDFailure(.unavailable, "the CA's JWT-SVID does not verify against its JWT bundle: \(error.message)")
    }
    guard let validated, validated.spiffeID == identity else {
      throw JWTSVIDFailure(.unavailable, "the CA's JWT-SVID does not name \(identity)")
    }
    return try JWTSVID(verifiedToken: token, spiffeID: identity, audience: audience, claimsJSON: validated.claimsJSON)
  }

  // MARK: - Following the CA's JWT bundle

  /// Fetches the CA's JWT bundle and publishes it.
  package func refreshBundle() async throws(JWTSVIDFailure) {
    let now = self.now()
    do throws(JWTSVIDFailure) {
      let bundle = try await self.authority.fetchJWTBundle()
      guard bundle.trustDomain == self.trustDomain else {
        throw JWTSVIDFailure(
          .unavailable,
          "the CA's JWT bundle is for the trust domain \(bundle.trustDomain), not the agent's \(self.trustDomain)")
      }
      let (changed, recovered) = self.state.withLock { state in
        let changed = state.bundle != bundle
        let recovered = state.failing
        state.bundle = bundle
        state.failing = false
        state.refreshAt = now.addingTimeInterval(self.refreshInterval.seconds)
        if changed { self.node?.updateJWTBundles { $0.own = bundle } }
        return (changed, recovered)
      }
      if changed || recovered {
        self.logger.info(
          "following the CA's JWT bundle",
          metadata: ["kids": "\(bundle.keys.map(\.kid).joined(separator: ","))"])
      }
    } catch {
      // A CA without the service (istiod) is asked again at the usual interval, not every 5 s.
      let unimplemented = error.code == .unimplemented
      let first = self.state.withLock { state in
        defer {
          state.failing = true
          state.refreshAt = now.addingTimeInterval(
            unimplemented ? self.refreshInterval.seconds : Self.retryDelay.seconds)
        }
        return !state.failing
      }
      if first, unimplemented {
        self.logger.notice(
          "the CA signs no JWT-SVIDs (istiod has no such API; ca serve does); the Workload API's JWT methods answer UNIMPLEMENTED",
          metadata: ["error": "\(error.message)"])
      } else if first {
        self.logger.warning(
          "cannot fetch the CA's JWT bundle; retrying every 5s", metadata: ["error": "\(error.message)"])
      }
      throw error
    }
  }

  /// When the bundle is fetched next.
  package var nextRefresh: Date { self.state.withLock { $0.refreshAt } }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      let next = self.nextRefresh
      return self.clock.now.advanced(by: .seconds(max(0, next.timeIntervalSince(self.now()))))
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer where self.now() >= self.nextRefresh {
        try? await self.refreshBundle()
      }
    }
  }
}
