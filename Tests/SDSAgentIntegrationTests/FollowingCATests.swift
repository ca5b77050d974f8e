import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing
import X509

@testable import SDSAgent

/// `FollowingCA` under the manual clock, its deadlines made by the identity supervisor's timer: a
/// root the CA stops sending stays in `ROOTCA` until every leaf chained to it has expired (one
/// certificate lifetime), then leaves it; the `ca-root` file's roots join the bundle and leave it
/// when they expire.
@Suite(.timeLimit(.minutes(1))) struct FollowingCATests {
  /// A CA whose root the test replaces: each answer chains to the root serving then.
  final class SwitchingCA: CertificateAuthority {
    let serving: Mutex<TestAuthority>

    init(_ material: CAMaterial) {
      self.serving = Mutex(TestAuthority(material: material))
    }

    func switchTo(_ material: CAMaterial) {
      self.serving.withLock { $0 = TestAuthority(material: material) }
    }

    func certify(
      identity: SPIFFEID, privateKey: WorkloadPrivateKey, ttl: Duration, now: Date, credential: CACredential
    ) async throws(CertificateAuthorityError) -> IssuedSVID {
      let authority = self.serving.withLock { $0 }
      return try await authority.certify(
        identity: identity, privateKey: privateKey, ttl: ttl, now: now, credential: credential)
    }
  }

  let files: WatchedFiles
  let first: CAMaterial
  let second: CAMaterial
  let upstream: SwitchingCA
  let following: FollowingCA
  static let retention = Duration.seconds(100)

  init() throws {
    self.files = try WatchedFiles()
    let clock = self.files.clock
    self.first = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: clock.date, commonName: "first")
    self.second = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: clock.date, commonName: "second")
    self.upstream = SwitchingCA(self.first)
    self.following = try FollowingCA(
      upstream: self.upstream, table: self.files.table, fileRoots: [], retention: { Self.retention },
      counters: self.files.counters, logger: self.files.logger)
  }

  func issue() async throws -> IssuedSVID {
    try await self.following.certify(
      identity: self.files.table.pinnedIdentity, privateKey: WorkloadPrivateKey(p256: .init()), ttl: Self.retention,
      now: self.files.clock.date, credential: .agent)
  }

  var served: Set<Certificate> { Set(self.files.cache.current.trust?.own.roots ?? []) }

  @Test func aRootTheCAStopsSendingIsTrustedUntilItsLeavesHaveExpired() async throws {
    let (first, second) = (self.first.certificate, self.second.certificate)
    try await self.files.supervising {
      let issued = try await self.issue()
      #expect(Set(issued.trustBundle.roots) == [first])
      #expect(self.served == [first])
      self.upstream.switchTo(self.second)
      let reissued = try await self.issue()
      #expect(Set(reissued.trustBundle.roots) == [first, second])
      #expect(self.following.current.retained[first] != nil)
      self.files.clock.advance(by: .seconds(99))
      #expect(self.served == [first, second], "the old root left before its leaves expired")
      self.files.clock.advance(by: .seconds(2))
      await self.files.cache.waitUntil { Set($0.trust?.own.roots ?? []) == [second] }
      #expect(self.following.current.retained.isEmpty)
      #expect(self.files.table.trustSchedule.deadline(of: .fetchedRetention) == nil)
    }
  }

  @Test func theRootsFileJoinsTheBundle() async throws {
    let file = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "file")
    _ = try await self.issue()
    try self.following.setFileRoots([file.certificate])
    #expect(self.served == [self.first.certificate, file.certificate])
    try self.following.setFileRoots([])
    #expect(self.served == [self.first.certificate])
  }

  @Test func aFileRootLeavesTheBundleWhenItExpires() async throws {
    let clock = self.files.clock
    let short = try CAMaterial.generateRoot(
      trustDomain: "cluster.local", now: clock.date, validity: .seconds(30), commonName: "short")
    let long = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: clock.date, commonName: "long")
    _ = try await self.issue()
    try self.following.setFileRoots([short.certificate, long.certificate])
    #expect(self.served == [self.first.certificate, short.certificate, long.certificate])
    let expiry = try #require(self.files.table.trustSchedule.deadline(of: .caRootExpiry))
    #expect(expiry == short.certificate.notValidAfter.addingTimeInterval(1))
    try await self.files.supervising {
      await clock.sleepers(atLeast: 1)
      clock.advance(by: .seconds(40))
      await self.files.cache.waitUntil {
        Set($0.trust?.own.roots ?? []) == [self.first.certificate, long.certificate]
      }
      #expect(self.following.current.fileRoots == [long.certificate])
      #expect(
        self.files.table.trustSchedule.deadline(of: .caRootExpiry)
          == long.certificate.notValidAfter.addingTimeInterval(1))
    }
    #expect(self.files.counters[.trustBundleErrors] == 0, "a file with a valid root left was counted")
  }

  @Test func aFileWhoseRootsAllExpiredLeavesTheCAsRootsAndIsCounted() async throws {
    let clock = self.files.clock
    let short = try CAMaterial.generateRoot(
      trustDomain: "cluster.local", now: clock.date, validity: .seconds(30), commonName: "short")
    _ = try await self.issue()
    try self.following.setFileRoots([short.certificate])
    #expect(self.served == [self.first.certificate, short.certificate])
    try await self.files.supervising {
      await clock.sleepers(atLeast: 1)
      clock.advance(by: .seconds(40))
      await self.files.counters.waitUntil { $0[.trustBundleErrors] == 1 }
      #expect(self.served == [self.first.certificate])
      #expect(self.following.current.fileRoots.isEmpty)
      #expect(self.files.table.trustSchedule.deadline(of: .caRootExpiry) == nil)
    }
  }
}
