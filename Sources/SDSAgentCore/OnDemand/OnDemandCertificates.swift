import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// TLS server certificates minted on demand by the embedded CA, one per DNS name Envoy asks for
/// (an SNI), within the allowed patterns, a cap on names held and a rate of new names. Each is
/// renewed at half its lifetime while streams hold it, and dropped once none has for the idle
/// timeout. One service, one timer.
public final class OnDemandCertificates<C: Clock>: Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  public struct Entry: Sendable {
    public fileprivate(set) var certificate: ServerCertificate?
    /// Streams holding the name.
    public fileprivate(set) var holders = 0
    public fileprivate(set) var idleSince: Date?
    /// When it is (re)issued next.
    public fileprivate(set) var dueAt: Date
    public fileprivate(set) var lastError: String?
  }

  struct State {
    var entries: [DNSName: Entry] = [:]
    var bucket: TokenBucket
  }

  public let settings: OnDemandSettings
  private let ca: EmbeddedCA
  private let table: IdentityTable
  private let counters: AgentCounters
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  private let state: Mutex<State>
  private let wake = WakeSignal()

  public init(
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
    self.state = Mutex(State(bucket: TokenBucket(rate: settings.rate, now: now())))
  }

  public var description: String { "OnDemandCertificates" }

  /// Every name held, with its certificate (once minted).
  public var entries: [DNSName: Entry] { self.state.withLock { $0.entries } }

  /// Takes a hold on the name a stream asks for, or says why it is refused.
  public func admit(_ text: String) -> Result<DNSName, OnDemandRefusal> {
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
        var evict: DNSName?
        if state.entries.count >= self.settings.maximumNames {
          guard
            let idle = state.entries.filter({ $0.value.holders == 0 }).min(by: {
              $0.value.idleSince! < $1.value.idleSince!
            })
          else { return .failure(.overCap) }
          evict = idle.key
        }
        guard state.bucket.take(now: now) == nil else { return .failure(.overRate) }
        if let evict { state.entries[evict] = nil }
        state.entries[name] = Entry(holders: 1, dueAt: now)
        return .success(name)
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
    }
    return result
  }

  /// Ends a stream's hold on `name`.
  public func release(_ name: DNSName) {
    let now = self.now()
    self.state.withLock { state in
      guard var entry = state.entries[name], entry.holders > 0 else { return }
      entry.holders -= 1
      if entry.holders == 0 { entry.idleSince = now }
      state.entries[name] = entry
    }
    self.wake.signal()
  }

  public func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      let next = self.state.withLock { state in
        state.entries.values.map { entry in
          entry.idleSince.map { min(entry.dueAt, $0.addingTimeInterval(self.settings.idleTimeout.seconds)) }
            ?? entry.dueAt
        }.min()
      }
      return next.map { self.clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now())))) }
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer {
        self.performDueWork()
      }
    }
  }

  /// Mints what is due, drops what is idle, and serves the result.
  func performDueWork() {
    let now = self.now()
    let (due, evicted) = self.state.withLock { state -> ([DNSName], [DNSName]) in
      let evicted = state.entries.filter { entry in
        entry.value.idleSince.map { now >= $0.addingTimeInterval(self.settings.idleTimeout.seconds) } ?? false
      }.map(\.key)
      for name in evicted { state.entries[name] = nil }
      return (state.entries.filter { $0.value.dueAt <= now }.map(\.key), evicted)
    }
    guard !due.isEmpty || !evicted.isEmpty else { return }
    var minted: [DNSName: Result<ServerCertificate, any Error>] = [:]
    for name in due {
      minted[name] = Result { try self.mint(name, now: now) }
    }
    let certificates = self.state.withLock { state -> [DNSName: ServerCertificate] in
      for (name, result) in minted where state.entries[name] != nil {
        switch result {
        case .success(let certificate):
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
    for (name, result) in minted {
      switch result {
      case .success(let certificate):
        self.counters.increment(.onDemandIssued)
        self.logger.info(
          "issued an on-demand certificate",
          metadata: [
            "name": "\(name)", "serial": "\(certificate.serial)",
            "not_after": "\(certificate.notAfter.formatted(.iso8601))",
          ])
      case .failure(let error):
        self.logger.error(
          "could not issue an on-demand certificate; retrying in 5s",
          metadata: ["name": "\(name)", "error": "\(error)"])
      }
    }
    for name in evicted {
      self.logger.info("dropped an idle on-demand certificate", metadata: ["name": "\(name)"])
    }
    self.table.installOnDemand(certificates)
  }

  private func mint(_ name: DNSName, now: Date) throws -> ServerCertificate {
    let key = try self.settings.keyType.generate()
    let chain = try LocalCA(material: self.ca.roots.signing, backdate: self.ca.backdate).signServer(
      publicKey: key.publicKey, name: name, ttl: self.settings.ttl, now: now)
    return try ServerCertificate(name: name, chain: chain, privateKey: key, issuedAt: now)
  }
}
