import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

/// Staged root rotations driven by a manual clock, with the identity supervisor issuing from the
/// same embedded CA: prepare, switch (after the overlap and every acknowledgement), retire.
@Suite(.timeLimit(.minutes(1))) struct RootRotationSupervisorTests {
  /// Records the phases it is asked to keep; can be told to fail.
  final class MemoryStore: RootRotationStore {
    let events = Mutex([String]())
    let failing = Mutex(false)

    func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {
      try self.record("prepared")
    }

    func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError) {
      try self.record("switched")
    }

    func retired() throws(RootRotationError) {
      try self.record("retired")
    }

    private func record(_ event: String) throws(RootRotationError) {
      if self.failing.withLock({ $0 }) { throw RootRotationError(.storage, "disk full") }
      self.events.withLock { $0.append(event) }
    }
  }

  let clock = ManualClock(startDate: Fixtures.now)
  let store = MemoryStore()
  let streams = StreamRegistry()
  let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>
  let roots: RootRotationSupervisor<ManualClock>

  init() throws {
    let clock = self.clock
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    try self.table.installTrustBundle(self.ca.trustBundle)
    self.identities = IdentitySupervisor(
      table: self.table, authority: self.ca, counters: AgentCounters(), clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    self.roots = RootRotationSupervisor(
      ca: self.ca, host: SDSRootRotationHost(table: self.table, streams: self.streams), store: self.store,
      resuming: nil,
      overlap: .seconds(10),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "next") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  func running(_ body: () async throws -> Void) async throws {
    try await self.identities.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.identities.run() }
      group.addTask { await self.roots.run() }
      try await body()
      group.cancelAll()
    }
  }

  var cache: SecretCache { self.table.pinnedCache }
  var oldRoot: Certificate { Fixtures.material.certificate }

  /// A stream that holds the bundle `bundle`, acknowledged or not.
  func openStream(holding bundle: TrustBundle, acknowledged: Bool) -> UInt64 {
    let id = self.streams.open(at: self.clock.date)
    self.streams.update(id) { $0.sentTrustBundle = bundle }
    if acknowledged { self.streams.acknowledged(id, version: "1") }
    return id
  }

  func isSigned(_ leaf: Certificate, by root: Certificate) -> Bool {
    root.publicKey.isValidSignature(leaf.signature, for: leaf)
  }

  @Test func prepareServesBothRootsAndRefusesASecondRotation() async throws {
    try await self.running {
      let rotation = try self.roots.start()
      #expect(rotation.phase == .prepared)
      let next = try #require(self.ca.roots.next?.certificate)
      #expect(Set(self.cache.current.trustBundle?.roots ?? []) == [self.oldRoot, next])
      #expect(self.store.events.withLock { $0 } == ["prepared"])
      #expect {
        try self.roots.start()
      } throws: { error in
        (error as? RootRotationError)?.code == .inProgress && "\(error)".contains("phase prepared")
      }
      // The old root still signs until the switch.
      try await self.table.rotate(Fixtures.identity)
      #expect(self.isSigned(try #require(self.cache.current.svid).leaf, by: self.oldRoot))
    }
  }

  @Test func switchWaitsForEveryStreamHoldingTheBundleThenReissues() async throws {
    try await self.running {
      let stream = self.openStream(holding: try #require(self.cache.current.trustBundle), acknowledged: true)
      _ = try self.roots.start(overlap: .seconds(10))
      let next = try #require(self.ca.roots.next?.certificate)
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      // The stream has not acknowledged the new root: the switch waits, up to two overlaps.
      await self.clock.sleeper(until: .seconds(20))
      #expect(self.roots.current?.phase == .prepared)
      #expect(self.roots.streamsAwaited.map(\.id) == [stream])
      self.streams.update(stream) { $0.sentTrustBundle = self.cache.current.trustBundle }
      self.streams.acknowledged(stream, version: "2")
      await self.cache.waitUntil { served in served.svid.map { self.isSigned($0.leaf, by: next) } ?? false }
      #expect(self.roots.current?.phase == .switched)
      #expect(self.store.events.withLock { $0 } == ["prepared", "switched"])
      #expect(Set(self.cache.current.trustBundle?.roots ?? []) == [self.oldRoot, next])
    }
  }

  @Test func streamsThatNeverAcknowledgeHoldTheSwitchBackForTwoOverlaps() async throws {
    try await self.running {
      _ = self.openStream(holding: try #require(self.cache.current.trustBundle), acknowledged: true)
      _ = try self.roots.start()
      let next = try #require(self.ca.roots.next?.certificate)
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.clock.sleeper(until: .seconds(20))
      #expect(self.roots.current?.phase == .prepared)
      self.clock.advance(by: .seconds(10))
      await self.cache.waitUntil { served in served.svid.map { self.isSigned($0.leaf, by: next) } ?? false }
      #expect(self.roots.current?.phase == .switched)
    }
  }

  @Test func retiresTheOldRootOnceNoLeafOfItCanBeValid() async throws {
    try await self.running {
      _ = try self.roots.start()
      let next = try #require(self.ca.roots.next?.certificate)
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.cache.waitUntil { served in served.svid.map { self.isSigned($0.leaf, by: next) } ?? false }
      // The leaf issued at 0 lives until 100; one issued just before the switch until 110.
      let retireAt = try #require(self.roots.current?.retireAt)
      #expect(retireAt == Fixtures.now.addingTimeInterval(110))
      await self.clock.sleeper(until: .seconds(110))
      self.clock.advance(by: .seconds(100))
      await self.cache.waitUntil { $0.trustBundle?.roots == [next] }
      #expect(self.roots.current == nil)
      #expect(self.store.events.withLock { $0 } == ["prepared", "switched", "retired"])
      // Another rotation may start now.
      #expect(try self.roots.start().phase == .prepared)
    }
  }

  @Test func aStepThatCannotBeRecordedIsNotTakenAndIsRetried() async throws {
    try await self.running {
      _ = try self.roots.start()
      let next = try #require(self.ca.roots.next?.certificate)
      self.store.failing.withLock { $0 = true }
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.clock.sleeper(until: .seconds(15))
      #expect(self.roots.current?.phase == .prepared)
      #expect(self.isSigned(try #require(self.cache.current.svid).leaf, by: self.oldRoot))
      self.store.failing.withLock { $0 = false }
      self.clock.advance(by: .seconds(5))
      await self.cache.waitUntil { served in served.svid.map { self.isSigned($0.leaf, by: next) } ?? false }
      #expect(self.store.events.withLock { $0 } == ["prepared", "switched"])
    }
  }

  // MARK: - On-demand certificates (issue #21, class 5)

  func onDemandStore() throws -> OnDemandCertificates<ManualClock> {
    let clock = self.clock
    return OnDemandCertificates(
      settings: OnDemandSettings(
        patterns: [try DNSNamePattern(parsing: "*.internal.example")], ttl: .seconds(1000), idleTimeout: .seconds(600)),
      ca: self.ca, table: self.table, counters: AgentCounters(), clock: clock, now: { clock.date },
      logger: Logger(label: "test"))
  }

  @Test func onDemandCertificatesAreReissuedAtTheSwitchAndTheOldRootOutlivesThem() async throws {
    let clock = self.clock
    let onDemand = try self.onDemandStore()
    let roots = RootRotationSupervisor(
      ca: self.ca, host: SDSRootRotationHost(table: self.table, streams: self.streams, onDemand: onDemand),
      store: self.store, resuming: nil, overlap: .seconds(10),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "next") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"))
    try await self.identities.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.identities.run() }
      group.addTask { await roots.run() }
      group.addTask { await onDemand.run() }
      let name = try onDemand.admit("a.internal.example").get()
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      let first = try #require(self.cache.current.onDemand[name]?.certificate)
      #expect(self.isSigned(first.leaf, by: self.oldRoot))
      _ = try roots.start()
      let next = try #require(self.ca.roots.next?.certificate)
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await roots.waitUntil { $0?.phase == .switched }
      // The on-demand leaf the old root signed lives until +1000 s: the old root stays until then.
      let retireAt = try #require(roots.current?.retireAt)
      #expect(retireAt >= first.notAfter, "the old root retires before the on-demand leaf it signed expires")
      // And the switch re-issued it from the new root, at once.
      let reissued = try #require(self.cache.current.onDemand[name]?.certificate)
      #expect(self.isSigned(reissued.leaf, by: next), "the on-demand certificate still chains to the old root")
      group.cancelAll()
    }
  }

  @Test func anOperatorCAReplacementReissuesOnDemandCertificatesAndKeepsTheOldRootForThem() async throws {
    let clock = self.clock
    let onDemand = try self.onDemandStore()
    let replacement = OperatorCAReplacement(
      ca: self.ca, table: self.table, onDemand: onDemand, now: { clock.date },
      logger: Logger(label: "test"))
    try await self.identities.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.identities.run() }
      group.addTask { await onDemand.run() }
      let name = try onDemand.admit("a.internal.example").get()
      await self.cache.waitUntil { $0.onDemand[name] != nil }
      let first = try #require(self.cache.current.onDemand[name]?.certificate)
      let second = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: clock.date, commonName: "second")
      try await replacement.replace(with: second)
      let retireAt = try #require(replacement.previousRootRetiresAt)
      #expect(retireAt >= first.notAfter, "the old root retires before the on-demand leaf it signed expires")
      let reissued = try #require(self.cache.current.onDemand[name]?.certificate)
      #expect(
        self.isSigned(reissued.leaf, by: second.certificate), "the on-demand certificate still chains to the old CA")
      group.cancelAll()
    }
  }

  // MARK: - A host that cannot see acknowledgements (`ca serve`)

  /// Like `ca serve`: nothing to push, no streams, leaves of at most `maximumTTL`, and a
  /// serving certificate to re-issue at the switch.
  final class CAHost: RootRotationHost {
    let maximumTTL: Duration = .seconds(30)
    let reissued = Mutex(0)
    let (bundles, bundleServed) = AsyncStream.makeStream(of: TrustBundle.self)

    func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
      self.bundleServed.yield(bundle)
    }

    func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream] { [] }
    var trustBundleAcknowledged: WakeSignal? { nil }

    func lastLeafExpiry(now: Date) -> Date { now.addingTimeInterval(self.maximumTTL.seconds) }

    func reissueAll() async -> [(subject: String, error: any Error)] {
      self.reissued.withLock { $0 += 1 }
      return []
    }

    var minimumOverlap: MinimumOverlap? { .renewal(maximumTTL: self.maximumTTL) }
  }

  func caSupervisor(_ host: CAHost) -> RootRotationSupervisor<ManualClock> {
    let clock = self.clock
    return RootRotationSupervisor(
      ca: self.ca, host: host, store: self.store, resuming: nil, overlap: .seconds(30),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "next") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  @Test func withoutAcknowledgementsToWaitForTheSwitchComesAtSwitchAtAndRetireAfterTheLongestLifetime() async throws {
    let host = CAHost()
    let roots = self.caSupervisor(host)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await roots.run() }
      var bundles = host.bundles.makeAsyncIterator()
      let rotation = try roots.start()
      let next = try #require(self.ca.roots.next?.certificate)
      #expect(await bundles.next() == TrustBundle(roots: [self.oldRoot, next]))
      await self.clock.sleeper(until: .seconds(30))
      self.clock.advance(by: .seconds(30))
      await self.clock.sleeper(until: .seconds(60))
      // Switched at switchAt, not held back to the deadline: nobody to wait for.
      #expect(roots.current?.switchedAt == rotation.switchAt)
      #expect(roots.current?.retireAt == rotation.switchAt.addingTimeInterval(30))
      #expect(self.ca.roots.signing.certificate == next)
      #expect(host.reissued.withLock { $0 } == 1)
      self.clock.advance(by: .seconds(30))
      #expect(await bundles.next() == TrustBundle(roots: [next]))
      #expect(roots.current == nil)
      #expect(self.store.events.withLock { $0 } == ["prepared", "switched", "retired"])
      group.cancelAll()
    }
  }

  @Test(arguments: [Duration.seconds(29), .seconds(1)])
  func anOverlapShorterThanTheHostsMinimumIsRefusedSayingWhy(overlap: Duration) throws {
    let roots = self.caSupervisor(CAHost())
    #expect {
      try roots.start(overlap: overlap)
    } throws: { error in
      let error = error as! RootRotationError
      return error.code == .overlapTooShort && error.message.contains("at least --max-ttl (30s)")
        && error.message.contains("only when it renews")
    }
    #expect(roots.current == nil)
    #expect(self.ca.roots.next == nil)
    #expect(self.store.events.withLock { $0 }.isEmpty)
    #expect(try roots.start(overlap: .seconds(30)).phase == .prepared)
  }
}
