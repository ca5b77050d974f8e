import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import X509

/// Fetch mode's revocation: follows the CA's CRLs and serves them in every own validation
/// context, as the embedded CA's own lists are. A CRL comes from the distribution point named in
/// the agent's own certificate (fetched at about half its remaining validity, at most every
/// `refresh`, with jitter; retried with backoff) or from a `--ca-crl` file (`offer`). Each is
/// verified against the trust bundle first; one that does not verify, is older than the one held
/// or is past its nextUpdate is refused (a log line, `crl_fetch_errors{source,reason}`) and the
/// last good one kept. Past its nextUpdate a CRL is no longer served (`FollowedCRL`: fail open).
/// A certificate the agent serves whose serial is listed is renewed at once.
package final class CRLFollower<C: Clock>: Service, CustomStringConvertible, Sendable where C.Duration == Duration {
  private let host: any CRLFollowerHost
  private let fetcher: any CRLFetcher
  private let clock: C
  private let now: @Sendable () -> Date
  /// A sample in 0...1 for jitter and backoff.
  private let random: @Sendable () -> Double
  /// The longest time between two fetches of the distribution point.
  private let refresh: Duration
  /// How long new lists wait for the renewal of a certificate served that they revoke.
  private let renewalGrace: Duration
  private let counters: AgentCounters
  private let logger: Logger
  private let wake = WakeSignal()
  private let state: Mutex<State>
  private let renewals: AsyncStream<(SPIFFEID, CertificateSerial)>
  private let renewalRequests: AsyncStream<(SPIFFEID, CertificateSerial)>.Continuation

  private struct State {
    var followed = FollowedCRLs()
    var point: CRLDistributionPoint?
    var fetchDue: Date?
    var backoff: Backoff
    var installed: [CertificateRevocationList] = []
    /// Serials whose holder is being renewed.
    var renewing: Set<CertificateSerial> = []
    /// Whether the lists installed are not served for want of a CRL of every own root.
    var uncovered = false
    /// While a certificate served is revoked and being renewed: until when the lists wait for it.
    var holdUntil: Date?
    /// CRLs offered before any certificate could verify them (before the first issuance).
    var pending: [(crl: CertificateRevocationList, source: CRLFetchFailure.Source, origin: String)] = []
  }

  package init(
    host: any CRLFollowerHost, fetcher: any CRLFetcher, clock: C, now: @escaping @Sendable () -> Date,
    random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }, refresh: Duration,
    renewalGrace: Duration = .seconds(2), counters: AgentCounters, logger: Logger
  ) {
    self.host = host
    self.fetcher = fetcher
    self.clock = clock
    self.now = now
    self.random = random
    self.refresh = refresh
    self.renewalGrace = renewalGrace
    self.counters = counters
    self.logger = logger
    self.state = Mutex(State(backoff: Backoff(initial: .seconds(1), maximum: max(.seconds(1), refresh))))
    (self.renewals, self.renewalRequests) = AsyncStream.makeStream()
  }

  package var description: String { "CRLFollower" }

  /// The distribution point followed, from the agent's own certificate.
  package var distributionPoint: CRLDistributionPoint? { self.state.withLock { $0.point } }

  /// When the distribution point is fetched next.
  package var nextFetch: Date? { self.state.withLock { $0.point == nil ? nil : $0.fetchDue } }

  /// The lists served now.
  package var served: [CertificateRevocationList] { self.state.withLock { $0.installed } }

  package func run() async {
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask {
          for await _ in self.host.changes() { self.wake.signal() }
        }
        group.addTask {
          for await (identity, serial) in self.renewals { await self.renew(identity, serial: serial) }
        }
        await self.step()
        let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
          self.nextDeadline.map { self.clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now())))) }
        }
        for await _ in timer {
          await self.step()
        }
        self.renewalRequests.finish()
        group.cancelAll()
      }
    }
  }

  /// The next fetch, or the next nextUpdate of a CRL served.
  private var nextDeadline: Date? {
    self.state.withLock { state in
      let fetch = state.point == nil ? nil : state.fetchDue
      let now = self.now()
      let hold = state.holdUntil.flatMap { $0 > now ? $0 : nil }
      return [fetch, state.followed.nextExpiry(after: now), hold].compactMap { $0 }.min()
    }
  }

  /// Takes the distribution point of the own certificate, fetches it if due, serves what holds.
  func step() async {
    if !self.host.crlIssuers.isEmpty {
      let pending = self.state.withLock { state in
        defer { state.pending = [] }
        return state.pending
      }
      for waiting in pending {
        self.offer(waiting.crl, from: waiting.source, origin: waiting.origin)
      }
    }
    let now = self.now()
    let point = self.host.servedLeaves.first.flatMap { CRLDistributionPoint(of: $0.leaf) }
    let due: CRLDistributionPoint? = self.state.withLock { state in
      if point != state.point {
        state.point = point
        state.fetchDue = now
        state.backoff.reset()
      }
      guard let point, let fetchDue = state.fetchDue, fetchDue <= now else { return nil }
      return point
    }
    if let due { await self.fetch(due) }
    self.publish()
  }

  private func fetch(_ point: CRLDistributionPoint) async {
    let origin = BoundedText(point.url).description
    var held: CertificateRevocationList?
    do {
      let bytes = try await self.fetcher.fetch(point)
      let lists = try self.read(bytes)
      for list in lists where self.offer(list, from: .distributionPoint, origin: origin) {
        held = list
      }
    } catch {
      self.refuse(error, from: .distributionPoint, origin: origin)
    }
    let now = self.now()
    let sample = self.random()
    self.state.withLock { state in
      guard let held, let row = state.followed.row(of: held) else {
        state.fetchDue = now.addingTimeInterval(max(0.5, state.backoff.nextDelay(sample: sample).seconds))
        return
      }
      state.backoff.reset()
      let halfway = row.refetch(at: now, jitterSample: 2 * sample - 1, retry: self.refresh)
      state.fetchDue = min(halfway, now.addingTimeInterval(self.refresh.seconds * (0.9 + 0.2 * sample)))
    }
  }

  /// Offers CRLs read from a source other than the distribution point (a `--ca-crl` file's bytes,
  /// DER or PEM) and serves what holds.
  package func offer(_ bytes: [UInt8], from source: CRLFetchFailure.Source, origin: String) {
    do {
      for list in try self.read(bytes) {
        self.offer(list, from: source, origin: origin)
      }
    } catch {
      self.refuse(error, from: source, origin: origin)
    }
    self.publish()
    self.wake.signal()
  }

  /// Counts and logs a CRL that could not be read from `source`; the last good one stays.
  package func refuse(_ failure: CRLFetchFailure, from source: CRLFetchFailure.Source, origin: String) {
    self.counters.increment(.crlFetchErrors, labels: [("source", source.rawValue), ("reason", failure.code.rawValue)])
    self.logger.warning(
      "refused a CRL; the last good one is kept",
      metadata: [
        "source": "\(source.rawValue)", "from": "\(origin)", "reason": "\(failure.code.rawValue)",
        "error": "\(BoundedText(failure.description, limit: 512))",
      ])
  }

  private func read(_ bytes: [UInt8]) throws(CRLFetchFailure) -> [CertificateRevocationList] {
    do {
      return try CertificateRevocationList.read(bytes)
    } catch {
      throw CRLFetchFailure(.unparsable, "not a CRL the agent reads", cause: error)
    }
  }

  /// Offers one CRL to its issuer's row; true when it is held (new or unchanged).
  @discardableResult
  private func offer(_ crl: CertificateRevocationList, from source: CRLFetchFailure.Source, origin: String) -> Bool {
    let issuers = self.host.crlIssuers
    let outcome = self.state.withLock { state -> FollowedCRL.Outcome? in
      guard !issuers.isEmpty else {
        state.pending = Array(
          (state.pending + [(crl: crl, source: source, origin: origin)]).suffix(
            CertificateRevocationList.maximumPerDocument))
        return nil
      }
      return state.followed.offer(crl, issuers: issuers, now: self.now())
    }
    switch outcome {
    case nil:
      return false
    case .accepted(let number):
      self.logger.info(
        "followed a new CRL",
        metadata: [
          "source": "\(source.rawValue)", "from": "\(origin)", "number": "\(number)",
          "entries": "\(crl.entries.count)", "next_update": "\(crl.nextUpdate.formatted(.iso8601))",
        ])
      return true
    case .unchanged:
      return true
    case .unverified:
      self.refuse(
        CRLFetchFailure(.unverified, "no certificate of the trust bundle signed it"), from: source, origin: origin)
    case .older(let number, let held):
      self.refuse(
        CRLFetchFailure(.older, "its CRL number \(number) is below the held one's, \(held)"), from: source,
        origin: origin)
    case .expired(let nextUpdate):
      self.refuse(
        CRLFetchFailure(.expired, "its nextUpdate, \(nextUpdate.formatted(.iso8601)), has passed"), from: source,
        origin: origin)
    }
    return false
  }

  /// Serves the CRLs valid now, says so loudly when one expired, and renews each certificate
  /// served whose serial is listed: first, for at most `renewalGrace`, so that the agent's Envoys
  /// are not refused with the old certificate before the new one reaches them.
  package func publish() {
    let issuers = self.host.crlIssuers
    let leaves = self.host.servedLeaves
    self.state.withLock { state in
      let now = self.now()
      if !issuers.isEmpty { state.followed.keep(issuers: issuers) }
      state.renewing.formIntersection(leaves.map { CertificateSerial($0.leaf.serialNumber) })
      let revoked = leaves.filter { state.followed.revokes(CertificateSerial($0.leaf.serialNumber), at: now) }
      for (identity, leaf) in revoked {
        let serial = CertificateSerial(leaf.serialNumber)
        guard state.renewing.insert(serial).inserted else { continue }
        self.logger.notice(
          "a followed CRL lists a certificate this agent serves; renewing it now",
          metadata: ["identity": "\(identity)", "serial": "\(serial)"])
        self.renewalRequests.yield((identity, serial))
      }
      if revoked.isEmpty {
        state.holdUntil = nil
      } else if state.holdUntil == nil {
        state.holdUntil = now.addingTimeInterval(self.renewalGrace.seconds)
      }
      if let holdUntil = state.holdUntil, now < holdUntil { return }
      let lists = state.followed.servable(at: now)
      if lists != state.installed {
        do {
          try self.host.installRevocationLists(lists)
          for expired in state.installed where expired.nextUpdate <= now {
            self.logger.error(
              "\(Self.expiredMessage)",
              metadata: ["number": "\(expired.number)", "next_update": "\(expired.nextUpdate.formatted(.iso8601))"])
          }
          state.installed = lists
          let uncovered = !lists.isEmpty && self.host.servedRevocationLists.isEmpty
          if uncovered && !state.uncovered {
            self.logger.warning(
              "\(Self.uncoveredMessage)",
              metadata: ["issuers": "\(lists.map { BoundedText($0.issuer.description).description })"])
          }
          state.uncovered = uncovered
        } catch {
          self.logger.error("cannot serve the followed CRLs", metadata: ["error": "\(error)"])
        }
      }
    }
  }

  static var uncoveredMessage: String {
    "the followed CRLs are not served: a root of the own trust bundle has none (Envoy wants one for every root "
      + "once one is served); revoked certificates are accepted until each root's CRL is followed"
  }

  static var expiredMessage: String {
    "a followed CRL passed its nextUpdate and no newer one could be had: no CRL of its issuer is served, "
      + "and revoked certificates are accepted again until one arrives"
  }

  private func renew(_ identity: SPIFFEID, serial: CertificateSerial) async {
    do {
      _ = try await self.host.renew(identity)
      self.wake.signal()
    } catch {
      self.logger.error(
        "cannot renew a revoked certificate; trying again at the next CRL check",
        metadata: ["identity": "\(identity)", "serial": "\(serial)", "error": "\(error)"])
      _ = self.state.withLock { $0.renewing.remove(serial) }
    }
  }
}
