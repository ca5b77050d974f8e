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
      ca: self.ca, table: self.table, streams: self.streams, store: self.store, resuming: nil,
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
}
