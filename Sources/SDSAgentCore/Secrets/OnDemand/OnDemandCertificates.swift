import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// TLS server certificates minted on demand by the embedded CA, one per DNS name Envoy asks for
/// (an SNI), within the allowed patterns, a cap on names held and a rate of new names. Each is
/// renewed at half its lifetime while streams hold it, and dropped once none has for the idle
/// timeout. One service, one timer.
package final class OnDemandCertificates<C: Clock>: Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  package struct Entry: Sendable {
    package fileprivate(set) var certificate: ServerCertificate?
    /// Streams holding the name.
    package fileprivate(set) var holders = 0
    /// Streams that were refused the name over the cap or the rate and have not taken it since it
    /// was minted for them; they hold it as `holders` do.
    package fileprivate(set) var reserved = 0
    package fileprivate(set) var idleSince: Date?
    /// When it is (re)issued next.
    package fileprivate(set) var dueAt: Date
    package fileprivate(set) var lastError: String?
  }

  /// Streams refused a name over the cap or the rate, waiting for it; minted in the order they
  /// first waited once the cap and the rate allow.
  struct Waiting {
    var streams: Int
    let since: UInt64
  }

  struct State {
    var entries: [DNSName: Entry] = [:]
    var bucket: TokenBucket
    var waiting: [DNSName: Waiting] = [:]
    var nextWaiting: UInt64 = 0
    /// A name no stream has held this long is dropped; reload changes it.
    var idleTimeout: Duration

    /// Whether a new name fits: under the cap, or with a name no stream holds to drop.
    func hasRoom(maximumNames: Int) -> Bool {
      self.entries.count < maximumNames || self.entries.values.contains { $0.idleSince != nil }
    }

    /// Makes room for a new name under the cap by dropping the longest idle one; false if every
    /// name is held.
    mutating func makeRoom(maximumNames: Int) -> Bool {
      guard self.entries.count >= maximumNames else { return true }
      guard
        let idle = self.entries.filter({ $0.value.idleSince != nil }).min(by: {
          $0.value.idleSince! < $1.value.idleSince!
        })
      else { return false }
      self.entries[idle.key] = nil
      return true
    }

    /// A new entry for `name`, held by `holders` streams and reserved for those waiting for it.
    mutating func insert(_ name: DNSName, holders: Int, now: Date) {
      let reserved = self.waiting.removeValue(forKey: name)?.streams ?? 0
      self.entries[name] = Entry(
        holders: holders, reserved: reserved, idleSince: holders + reserved == 0 ? now : nil, dueAt: now)
    }
  }

  /// The most names streams may wait for at once; beyond it a name refused over the cap or the
  /// rate is refused for good (`overWaiting`): the client must ask again.
  package static var maximumWaiting: Int { 4096 }

  /// The settings at start; reload changes only the idle timeout (`idleTimeout`).
  package let settings: OnDemandSettings
  private let ca: EmbeddedCA
  private let table: IdentityTable
  private let counters: AgentCounters
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  private let state: Mutex<State>
  private let wake = WakeSignal()

  package init(
    settings: OnDemandSettings, ca: EmbeddedCA, table: IdentityTable, counters: AgentCounters, clock: C,
    now: @escaping @Sendable () -> Date, logger: Logger
  ) {
    self.settings = settings
    self.ca = ca
    self.table = table
    self.counters = counters
    self.clock = clock
    self.now = now
    self.logger = logger
    self.state = Mutex(State(bucket: TokenBucket(rate: settings.rate, now: now()), idleTimeout: settings.idleTimeout))
  }

  package var description: String { "OnDemandCertificates" }

  /// How long a name no stream holds is kept, as the last reload set it.
  package var idleTimeout: Duration { self.state.withLock { $0.idleTimeout } }

  /// Keeps names no stream holds for `idleTimeout` from now on, those idle already included.
  package func reconfigure(idleTimeout: Duration) {
    self.state.withLock { $0.idleTimeout = idleTimeout }
    self.wake.signal()
  }

  /// Every name held, with its certificate (once minted).
  package var entries: [DNSName: Entry] { self.state.withLock { $0.entries } }

  /// Whether streams of `caller` may ask for on-demand names (`--on-demand-callers`).
  package func allows(caller: SPIFFEID) -> Bool {
    self.settings.allows(caller: caller)
  }

  /// Takes a hold on the name a stream asks for, or says why it is refused. A name refused over
  /// the cap or the rate is waited for: it is minted once both allow, and the stream takes it
  /// with `admitWaiting` (or gives up with `withdraw`).
  package func admit(_ text: String) -> Result<DNSName, OnDemandRefusal> {
    let now = self.now()
    let result: Result<DNSName, OnDemandRefusal>
    if let name = try? DNSName(parsing: text) {
      result = self.state.withLock { state in
        guard self.settings.allows(name) else { return .failure(.notAllowed) }
        if state.entries[name] != nil {
          state.entries[name]!.holders += 1
          state.entries[name]!.idleSince = nil
          return .success(name)
        }
        // Room is made by dropping the longest idle name, never one a stream holds; nothing is
        // dropped for a name that is refused anyway.
        let refusal: OnDemandRefusal? =
          !state.hasRoom(maximumNames: self.settings.maximumNames)
          ? .overCap : state.bucket.take(now: now) == nil ? nil : .overRate
        guard let refusal else {
          _ = state.makeRoom(maximumNames: self.settings.maximumNames)
          state.insert(name, holders: 1, now: now)
          return .success(name)
        }
        if state.waiting[name] != nil {
          state.waiting[name]!.streams += 1
        } else if state.waiting.count < Self.maximumWaiting {
          state.waiting[name] = Waiting(streams: 1, since: state.nextWaiting)
          state.nextWaiting += 1
        } else {
          return .failure(.overWaiting)
        }
        return .failure(refusal)
      }
    } else {
      result = .failure(.invalidName)
    }
    switch result {
    case .success: self.wake.signal()
    case .failure(let refusal):
      self.counters.increment(.onDemandRefused, labels: [("reason", refusal.rawValue)])
      self.logger.info(
        "refused an on-demand certificate",
        metadata: ["name": "\(BoundedText(text, limit: 64))", "reason": "\(refusal.rawValue)"])
      // A name waited for is minted when the rate or the cap allows: the timer must know.
      if refusal.isTransient { self.wake.signal() }
    }
    return result
  }

  /// A stream refused `name` over the cap or the rate takes it, now that it is minted; false
  /// while it is not.
  package func admitWaiting(_ name: DNSName) -> Bool {
    self.state.withLock { state in
      guard var entry = state.entries[name] else { return false }
      if entry.reserved > 0 {
        entry.reserved -= 1
      } else if let waiting = state.waiting[name] {
        // Not minted for the waiters (another stream's admission made it): the wait ends here.
        state.waiting[name] = waiting.streams > 1 ? Waiting(streams: waiting.streams - 1, since: waiting.since) : nil
      }
      entry.holders += 1
      entry.idleSince = nil
      state.entries[name] = entry
      return true
    }
  }

  /// A stream that waited for `name` no longer wants it.
  package func withdraw(_ name: DNSName) {
    let now = self.now()
    self.state.withLock { state in
      if let waiting = state.waiting[name] {
        state.waiting[name] = waiting.streams > 1 ? Waiting(streams: waiting.streams - 1, since: waiting.since) : nil
      } else if var entry = state.entries[name], entry.reserved > 0 {
        entry.reserved -= 1
        if entry.holders + entry.reserved == 0 { entry.idleSince = now }
        state.entries[name] = entry
      }
    }
    self.wake.signal()
  }

  /// Ends a stream's hold on `name`.
  package func release(_ name: DNSName) {
    let now = self.now()
    self.state.withLock { state in
      guard var entry = state.entries[name], entry.holders > 0 else { return }
      entry.holders -= 1
      if entry.holders + entry.reserved == 0 { entry.idleSince = now }
      state.entries[name] = entry
    }
    self.wake.signal()
  }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      let now = self.now()
      let next = self.state.withLock { state in
        let entries = state.entries.values.map { entry in
          entry.idleSince.map { min(entry.dueAt, $0.addingTimeInterval(state.idleTimeout.seconds)) }
            ?? entry.dueAt
        }
        return (entries + [self.nextWaitingMint(state, now: now)].compactMap { $0 }).min()
      }
      return next.map { self.clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now())))) }
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer {
        self.performDueWork()
      }
    }
  }

  /// When a name waited for can be minted: when the next token comes, if there is room; `nil`
  /// while nothing waits or every name is held (a release wakes the timer).
  private func nextWaitingMint(_ state: State, now: Date) -> Date? {
    guard !state.waiting.isEmpty, state.hasRoom(maximumNames: self.settings.maximumNames) else { return nil }
    var bucket = state.bucket
    return now.addingTimeInterval(bucket.take(now: now)?.seconds ?? 0)
  }

  /// Mints what is due, drops what is idle, admits the names waited for that the cap and the rate
  /// now allow, and serves the result. Returns what could not be minted.
  @discardableResult
  func performDueWork() -> [DNSName: any Error] {
    let now = self.now()
    let (due, evicted) = self.state.withLock { state -> ([DNSName], [DNSName]) in
      let evicted = state.entries.filter { entry in
        entry.value.idleSince.map { now >= $0.addingTimeInterval(state.idleTimeout.seconds) } ?? false
      }.map(\.key)
      for name in evicted { state.entries[name] = nil }
      for (name, _) in state.waiting.sorted(by: { $0.value.since < $1.value.since }) {
        guard state.entries[name] == nil else {
          state.waiting[name] = nil
          continue
        }
        guard state.hasRoom(maximumNames: self.settings.maximumNames), state.bucket.take(now: now) == nil else { break }
        _ = state.makeRoom(maximumNames: self.settings.maximumNames)
        state.insert(name, holders: 0, now: now)
      }
      return (state.entries.filter { $0.value.dueAt <= now }.map(\.key), evicted)
    }
    guard !due.isEmpty || !evicted.isEmpty else { return [:] }
    var minted: [DNSName: Result<(ServerCertificate, signedBy: CAMaterial), any Error>] = [:]
    for name in due {
      minted[name] = Result { try self.mint(name, now: now) }
    }
    var stale = false
    let certificates = self.state.withLock { state -> [DNSName: ServerCertificate] in
      let signing = self.ca.roots.signing.certificate
      for (name, result) in minted where state.entries[name] != nil {
        switch result {
        case .success(let (certificate, signedBy)):
          // Minted while the signing CA changed (a root rotation's switch, an operator CA
          // replaced): not served, minted again at once from the CA that signs now.
          guard signedBy.certificate == signing else {
            state.entries[name]!.dueAt = now
            stale = true
            continue
          }
          state.entries[name]!.certificate = certificate
          state.entries[name]!.lastError = nil
          state.entries[name]!.dueAt = now.addingTimeInterval(self.settings.ttl.seconds / 2)
        case .failure(let error):
          state.entries[name]!.lastError = "\(error)"
          state.entries[name]!.dueAt = now.addingTimeInterval(5)
        }
      }
      return state.entries.compactMapValues(\.certificate)
    }
    var failures: [DNSName: any Error] = [:]
    for (name, result) in minted {
      switch result {
      case .success(let (certificate, _)):
        self.counters.increment(.onDemandIssued)
        self.logger.info(
          "issued an on-demand certificate",
          metadata: [
            "name": "\(name)", "serial": "\(certificate.serial)",
            "not_after": "\(certificate.notAfter.formatted(.iso8601))",
          ])
      case .failure(let error):
        failures[name] = error
        self.logger.error(
          "could not issue an on-demand certificate; retrying in 5s",
          metadata: ["name": "\(name)", "error": "\(error)"])
      }
    }
    for name in evicted {
      self.logger.info("dropped an idle on-demand certificate", metadata: ["name": "\(name)"])
    }
    self.table.installOnDemand(certificates)
    if stale { self.wake.signal() }
    return failures
  }

  private func mint(_ name: DNSName, now: Date) throws -> (ServerCertificate, signedBy: CAMaterial) {
    let key = try self.settings.keyType.generate()
    let signing = self.ca.roots.signing
    let chain = try LocalCA(material: signing, backdate: self.ca.backdate).signServer(
      publicKey: key.publicKey, name: name, ttl: self.settings.ttl, now: now)
    return (try ServerCertificate(name: name, chain: chain, privateKey: key, issuedAt: now), signing)
  }
}

extension OnDemandCertificates: ReissuedLeaves {
  /// Every name held has a leaf of at most the on-demand lifetime, from the CA that signed last.
  package func lastLeafExpiry(now: Date) -> Date? {
    self.state.withLock { $0.entries.isEmpty ? nil : now.addingTimeInterval(self.settings.ttl.seconds) }
  }

  /// Mints every name held again, now, from the CA that signs now; a failure is retried as usual.
  package func reissueAll() async -> [(subject: String, error: any Error)] {
    let now = self.now()
    self.state.withLock { state in
      for name in state.entries.keys { state.entries[name]!.dueAt = now }
    }
    return self.performDueWork().map { (subject: $0.key.name, error: $0.value) }
  }
}
