import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

/// The CRL follower of fetch mode under a manual clock, with a fake host (the identity table's
/// place) and a fake distribution point: it serves the CRL the point answers, fetches again
/// before nextUpdate, refuses an older or an unverifiable CRL (counted, the last good kept),
/// serves none once the held one is past nextUpdate, and renews a certificate it serves whose
/// serial is listed.
@Suite(.timeLimit(.minutes(1))) struct CRLFollowerTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let counters = AgentCounters()
  let host: FakeHost
  let point: FakeDistributionPoint
  let follower: CRLFollower<ManualClock>

  init() throws {
    self.host = FakeHost(issuers: [Fixtures.material.certificate], leaf: try Self.leaf())
    self.point = FakeDistributionPoint()
    let clock = self.clock
    self.follower = CRLFollower(
      host: self.host, fetcher: self.point, clock: clock, now: { clock.date }, random: { 0.5 },
      refresh: .seconds(86400), counters: self.counters, logger: Logger(label: "test"))
  }

  static func leaf() throws -> Certificate {
    try LocalCA(
      material: Fixtures.material, crlDistributionPoint: CRLDistributionPoint(url: "http://ca.test:8081/crl")
    ).sign(
      publicKey: try WorkloadKeyType.ecdsaP256.generate().publicKey, identity: Fixtures.identity,
      ttl: .seconds(86400), now: Fixtures.now)[0]
  }

  func crl(
    _ number: Int, signedBy signer: CAMaterial = Fixtures.material, at start: Date? = nil, hours: Double = 4,
    revoking serials: [CertificateSerial] = []
  ) throws -> CertificateRevocationList {
    let start = start ?? self.clock.date
    return try CertificateRevocationList(
      issuer: signer.certificate, issuerKey: signer.privateKey, number: number,
      entries: serials.map {
        RevokedCertificate(serial: $0, revokedAt: start, reason: .keyCompromise, notAfter: start + 86400)
      },
      thisUpdate: start, nextUpdate: start + hours * 3600)
  }

  /// Runs the follower while `body` runs.
  func running(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.follower.run() }
      try await body()
      group.cancelAll()
    }
  }

  /// Moves the clock to the follower's next wake and waits until it sleeps again.
  func advanceToNextWake() async throws {
    await self.clock.sleepers(atLeast: 1)
    let next = try #require(self.clock.nextDeadline)
    self.clock.advance(by: next - self.clock.now.offset)
    await self.clock.sleepers(atLeast: 1)
  }

  func errors(_ reason: CRLFetchFailure.Code) -> Int {
    self.counters.series.first {
      $0.series.name == .crlFetchErrors
        && $0.series.labels.contains { $0.name == "reason" && $0.value == reason.rawValue }
    }?.value ?? 0
  }

  @Test func itServesTheFetchedCRLAndFetchesAgainBeforeNextUpdate() async throws {
    let first = try self.crl(1)
    self.point.answer(first.derBytes)
    try await self.running {
      #expect(await self.host.nextInstall().map(\.number) == [1])
      #expect(self.point.fetches == ["http://ca.test:8081/crl"])
      await self.clock.sleepers(atLeast: 1)
      let due = try #require(self.follower.nextFetch)
      print("CRL follower: fetched at +0 s, next fetch at +\(due.timeIntervalSince(Fixtures.now)) s, nextUpdate +4 h")
      #expect(due > Fixtures.now && due < first.nextUpdate)
      self.point.answer(try self.crl(2, at: due))
      try await self.advanceToNextWake()
      #expect(self.clock.date < first.nextUpdate)
      #expect(self.point.fetches.count == 2)
      #expect(self.host.installed.map(\.number) == [2])
    }
  }

  @Test func anOlderOrUnverifiableCRLIsRefusedCountedAndTheLastGoodKept() async throws {
    self.point.answer(try self.crl(5).derBytes)
    try await self.running {
      #expect(await self.host.nextInstall().map(\.number) == [5])
      self.point.answer(try self.crl(4).derBytes)
      try await self.advanceToNextWake()
      #expect(self.errors(.older) == 1)
      #expect(self.host.installed.map(\.number) == [5])
      let stranger = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now)
      self.point.answer(try self.crl(9, signedBy: stranger).derBytes)
      try await self.advanceToNextWake()
      #expect(self.errors(.unverified) == 1)
      self.point.answer(Array("<html>not a CRL</html>".utf8))
      try await self.advanceToNextWake()
      #expect(self.errors(.unparsable) == 1)
      #expect(self.host.installed.map(\.number) == [5])
      #expect(self.follower.served.map(\.number) == [5])
    }
  }

  @Test func pastNextUpdateWithoutAFreshCRLNoCRLIsServed() async throws {
    let only = try self.crl(1, hours: 1)
    self.point.answer(only.derBytes)
    try await self.running {
      #expect(await self.host.nextInstall().map(\.number) == [1])
      self.point.fail(CRLFetchFailure(.unreachable, "down"))
      var wakes = 0
      while self.clock.date < only.nextUpdate, wakes < 200 {
        try await self.advanceToNextWake()
        wakes += 1
      }
      print("CRL follower: \(wakes) wakes (retries) until nextUpdate; \(self.errors(.unreachable)) failed fetches")
      #expect(self.clock.date >= only.nextUpdate)
      #expect(self.errors(.unreachable) >= 1)
      #expect(self.host.installed.isEmpty)
      #expect(self.follower.served.isEmpty)
    }
  }

  @Test func aCRLListingTheAgentsOwnSerialRenewsItAtOnceAndIsServedAfterTheNewCertificate() async throws {
    let serial = CertificateSerial(self.host.servedLeaves[0].leaf.serialNumber)
    self.host.renewWith { try Self.leaf() }
    self.point.answer(try self.crl(3, revoking: [serial]).derBytes)
    try await self.running {
      #expect(await self.host.nextRenewal() == Fixtures.identity)
      let installed = await self.host.nextInstall()
      #expect(installed.first?.revokes(serial) == true)
      #expect(CertificateSerial(self.host.servedLeaves[0].leaf.serialNumber) != serial)
      #expect(self.clock.now.offset == .zero, "the list waited for more than the renewal")
    }
  }

  @Test func whenTheRenewalFailsTheListIsServedAfterTheGrace() async throws {
    let serial = CertificateSerial(self.host.servedLeaves[0].leaf.serialNumber)
    self.host.renewWith { throw CRLFetchFailure(.unreachable, "the CA is down") }
    self.point.answer(try self.crl(3, revoking: [serial]).derBytes)
    try await self.running {
      #expect(await self.host.nextRenewal() == Fixtures.identity)
      await self.clock.sleepers(atLeast: 1)
      #expect(self.host.installed.isEmpty, "served before its holder was renewed or the grace was over")
      #expect(self.clock.nextDeadline == .seconds(2))
      self.clock.advance(by: .seconds(2))
      #expect(await self.host.nextInstall().first?.revokes(serial) == true)
    }
  }

  @Test func duringARootRotationItHoldsOneCRLPerRootFromOneAnswer() async throws {
    let next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "next")
    self.host.trust([Fixtures.material.certificate, next.certificate])
    let both = try self.crl(7).pemString + "\n" + self.crl(7, signedBy: next).pemString
    self.point.answer(Array(both.utf8))
    try await self.running {
      let installed = await self.host.nextInstall()
      #expect(installed.count == 2)
      #expect(installed.contains { $0.isSigned(by: Fixtures.material.certificate) })
      #expect(installed.contains { $0.isSigned(by: next.certificate) })
    }
  }

  @Test func aFileReadBeforeAnyTrustIsOfferedAgainOnceTheBundleArrives() async throws {
    self.host.trust([])
    self.point.fail(CRLFetchFailure(.unreachable, "down"))
    try await self.running {
      self.follower.offer(Array(try self.crl(4).pemString.utf8), from: .file, origin: "/etc/ca-crl.pem")
      #expect(self.host.installed.isEmpty)
      #expect(self.errors(.unverified) == 0, "refused before anything could verify it")
      self.host.trust([Fixtures.material.certificate])
      #expect(await self.host.nextInstall().map(\.number) == [4])
    }
  }

  @Test func aFileCRLIsVerifiedLikeAFetchedOneAndANewerOneFromEitherSourceWins() async throws {
    self.point.answer(try self.crl(1).derBytes)
    try await self.running {
      #expect(await self.host.nextInstall().map(\.number) == [1])
      self.follower.offer(Array(try self.crl(2).pemString.utf8), from: .file, origin: "/etc/ca-crl.pem")
      #expect(self.host.installed.map(\.number) == [2])
      self.follower.offer(Array(try self.crl(1).pemString.utf8), from: .file, origin: "/etc/ca-crl.pem")
      #expect(self.errors(.older) == 1)
      #expect(self.host.installed.map(\.number) == [2])
    }
  }
}

/// The identity table's place: fixed issuers and one leaf; records what is installed and renewed.
final class FakeHost: CRLFollowerHost {
  private let issuers: Mutex<[Certificate]>
  private let leaf: Mutex<Certificate>
  private let renewal = Mutex<@Sendable () throws -> Certificate>({ throw CRLFetchFailure(.unreachable, "no CA") })
  private let lists = Mutex<[CertificateRevocationList]>([])
  private let installs: AsyncStream<[CertificateRevocationList]>
  private let installContinuation: AsyncStream<[CertificateRevocationList]>.Continuation
  private let renewals: AsyncStream<SPIFFEID>
  private let renewed: AsyncStream<SPIFFEID>.Continuation
  private let changeStream: AsyncStream<Void>
  private let changed: AsyncStream<Void>.Continuation

  init(issuers: [Certificate], leaf: Certificate) {
    self.issuers = Mutex(issuers)
    self.leaf = Mutex(leaf)
    (self.installs, self.installContinuation) = AsyncStream.makeStream()
    (self.renewals, self.renewed) = AsyncStream.makeStream()
    (self.changeStream, self.changed) = AsyncStream.makeStream()
  }

  var crlIssuers: [Certificate] { self.issuers.withLock { $0 } }

  /// Trusts `issuers` from now on, as a first issuance or a new bundle does, and says so.
  func trust(_ issuers: [Certificate]) {
    self.issuers.withLock { $0 = issuers }
    self.changed.yield()
  }

  var servedLeaves: [(identity: SPIFFEID, leaf: Certificate)] {
    [(Fixtures.identity, self.leaf.withLock { $0 })]
  }

  /// What a renewal does: the new leaf, or an error.
  func renewWith(_ renewal: @escaping @Sendable () throws -> Certificate) {
    self.renewal.withLock { $0 = renewal }
  }

  var installed: [CertificateRevocationList] { self.lists.withLock { $0 } }

  var servedRevocationLists: [CertificateRevocationList] { self.installed }

  func installRevocationLists(_ lists: [CertificateRevocationList]) {
    self.lists.withLock { $0 = lists }
    self.installContinuation.yield(lists)
  }

  func renew(_ identity: SPIFFEID) async throws -> Bool {
    defer { self.renewed.yield(identity) }
    let next = try self.renewal.withLock { $0 }()
    self.leaf.withLock { $0 = next }
    return true
  }

  func changes() -> AsyncStream<Void> { self.changeStream }

  func nextInstall() async -> [CertificateRevocationList] {
    var iterator = self.installs.makeAsyncIterator()
    return await iterator.next() ?? []
  }

  func nextRenewal() async -> SPIFFEID? {
    var iterator = self.renewals.makeAsyncIterator()
    return await iterator.next()
  }
}

/// A distribution point that answers what the test set last, and records each fetch.
final class FakeDistributionPoint: CRLFetcher {
  private let state = Mutex<(answer: Result<[UInt8], CRLFetchFailure>, fetches: [String])>(
    (.failure(CRLFetchFailure(.unreachable, "nothing set")), []))

  func answer(_ bytes: [UInt8]) { self.state.withLock { $0.answer = .success(bytes) } }
  func answer(_ crl: CertificateRevocationList) { self.answer(crl.derBytes) }
  func fail(_ failure: CRLFetchFailure) { self.state.withLock { $0.answer = .failure(failure) } }
  var fetches: [String] { self.state.withLock { $0.fetches } }

  func fetch(_ point: CRLDistributionPoint) async throws(CRLFetchFailure) -> [UInt8] {
    try self.state.withLock { state in
      state.fetches.append(point.url)
      return state.answer
    }.get()
  }
}
