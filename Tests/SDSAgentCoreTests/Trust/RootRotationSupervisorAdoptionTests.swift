import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

/// A rotation another writer recorded (a `ca serve` replica sharing its datastore) is adopted:
/// its roots installed and served, a new signing root re-issued from, and its next step taken
/// here at its deadline on the manual clock.
@Suite(.timeLimit(.minutes(1))) struct RootRotationSupervisorAdoptionTests {
  /// Counts what the supervisor asks of its host and its store.
  final class Recorder: RootRotationHost, RootRotationStore {
    let served = Mutex([TrustBundle]())
    let reissues = Mutex(0)
    let steps = Mutex([String]())

    func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
      self.served.withLock { $0.append(bundle) }
    }
    func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream] { [] }
    var trustBundleAcknowledged: WakeSignal? { nil }
    func lastLeafExpiry(now: Date) -> Date { now.addingTimeInterval(5) }
    func reissueAll() async -> [(subject: String, error: any Error)] {
      self.reissues.withLock { $0 += 1 }
      return []
    }
    var minimumOverlap: MinimumOverlap? { nil }

    func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {
      self.steps.withLock { $0.append("prepared") }
    }
    func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError) {
      self.steps.withLock { $0.append("switched") }
    }
    func retired() throws(RootRotationError) {
      self.steps.withLock { $0.append("retired") }
    }
  }

  let clock = ManualClock(startDate: Fixtures.now)
  let recorder = Recorder()
  let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
  let next: CAMaterial
  let roots: RootRotationSupervisor<ManualClock>

  init() throws {
    let clock = self.clock
    self.next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "next")
    self.roots = RootRotationSupervisor(
      ca: self.ca, host: self.recorder, store: self.recorder, resuming: nil, overlap: .seconds(10),
      makeRoot: { try CAMaterial.generateRoot(trustDomain: "cluster.local", now: $0, commonName: "other") },
      clock: clock, now: { clock.date }, logger: Logger(label: "test"))
  }

  var prepared: RootRotation {
    RootRotation(
      preparedAt: self.clock.date, overlap: .seconds(10),
      previousRootSerial: Fixtures.material.certificate.serialHex, nextRootSerial: self.next.certificate.serialHex)
  }

  @Test func anAdoptedPrepareServesBothRootsWithoutReissuing() async throws {
    await self.roots.adopt(self.prepared, roots: EmbeddedCA.Roots(signing: Fixtures.material, next: self.next))
    #expect(self.roots.current == self.prepared)
    #expect(self.ca.trustBundle.roots.count == 2)
    #expect(self.recorder.served.withLock { $0.last?.roots.count } == 2)
    #expect(self.recorder.reissues.withLock { $0 } == 0)
    #expect(self.recorder.steps.withLock { $0 }.isEmpty)
    // A second rotation is refused: the adopted one is in progress.
    #expect(throws: RootRotationError.self) { try self.roots.start() }
  }

  @Test func anAdoptedSwitchReissuesFromTheNewRoot() async throws {
    var switched = self.prepared
    switched.switched(at: self.clock.date, lastOldLeafExpiry: self.clock.date.addingTimeInterval(5))
    let roots = EmbeddedCA.Roots(
      signing: self.next, previous: Fixtures.material.certificate, previousKey: Fixtures.material.privateKey)
    await self.roots.adopt(switched, roots: roots)
    #expect(self.ca.roots.signing.certificate == self.next.certificate)
    #expect(self.recorder.reissues.withLock { $0 } == 1)
    // The same state adopted again re-issues nothing more.
    await self.roots.adopt(switched, roots: roots)
    #expect(self.recorder.reissues.withLock { $0 } == 1)
  }

  @Test func theAdoptedRotationsNextStepIsTakenHereAtItsDeadline() async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.roots.run() }
      await self.roots.adopt(self.prepared, roots: EmbeddedCA.Roots(signing: Fixtures.material, next: self.next))
      await self.clock.sleeper(until: .seconds(10))
      self.clock.advance(by: .seconds(10))
      await self.roots.waitUntil { $0?.phase == .switched }
      #expect(self.recorder.steps.withLock { $0 } == ["switched"])
      #expect(self.ca.roots.signing.certificate == self.next.certificate)
      group.cancelAll()
    }
  }
}
