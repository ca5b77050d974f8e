import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `FederatedBundleWatcher` following real bundle files under the manual clock: a changed file
/// is served once the settle delay is over; a bad one keeps the last good bundle and is counted;
/// reload adds a trust domain and drops another, with their files' watches.
@Suite(.timeLimit(.minutes(1))) struct FederatedBundleWatcherTests {
  let files: WatchedFiles
  let other: TrustDomainName
  let first: CAMaterial
  let watcher: FederatedBundleWatcher
  let settle = Duration.milliseconds(150)

  init() throws {
    self.files = try WatchedFiles()
    self.other = try TrustDomainName(parsing: "other.example")
    self.first = try CAMaterial.generateRoot(trustDomain: "other.example", now: Date(), commonName: "first")
    try self.files.install(try WatchedFiles.pem(self.first), at: self.files.path("other.pem"), mode: 0o644)
    self.watcher = try FederatedBundleWatcher(
      sources: [FederatedBundleSource(trustDomain: self.other, path: self.files.path("other.pem"))],
      table: self.files.table, counters: self.files.counters, watching: self.files.service, clock: self.files.clock,
      settle: self.settle, logger: self.files.logger)
  }

  func served(_ domain: TrustDomainName) -> TrustBundle? {
    self.files.cache.current.trust?.federated[domain]
  }

  func running(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await self.watcher.run() }
      try await body()
      group.cancelAll()
    }
  }

  @Test func aChangedBundleIsServedOnceTheSettleDelayIsOver() async throws {
    #expect(self.served(self.other) == self.first.trustBundle)
    try await self.running {
      let second = try CAMaterial.generateRoot(trustDomain: "other.example", now: Date(), commonName: "second")
      try self.files.install(try WatchedFiles.pem(second), at: self.files.path("other.pem"), mode: 0o644)
      await self.files.clock.sleeper(until: self.settle)
      #expect(self.served(self.other) == self.first.trustBundle, "served before the settle delay was over")
      self.files.clock.advance(by: self.settle)
      await self.files.cache.waitUntil { $0.trust?.federated[self.other] == second.trustBundle }
      #expect(self.watcher.current.first?.lastError == nil)
    }
  }

  @Test func aBadFileKeepsTheLastGoodBundleAndIsCounted() async throws {
    try await self.running {
      try self.files.install("not a bundle\n", at: self.files.path("other.pem"), mode: 0o644)
      await self.files.clock.sleeper(until: self.settle)
      self.files.clock.advance(by: self.settle)
      await self.files.counters.waitUntil { $0[.trustBundleErrors] == 1 }
      #expect(self.served(self.other) == self.first.trustBundle)
      let entry = try #require(self.watcher.current.first)
      #expect(entry.bundle == self.first.trustBundle)
      #expect(entry.lastError?.hasPrefix("unparsable") == true)
    }
  }

  @Test func reloadAddsADomainAndDropsAnother() async throws {
    let third = try TrustDomainName(parsing: "third.example")
    let directory = self.files.path("third")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    let root = try CAMaterial.generateRoot(trustDomain: "third.example", now: Date(), commonName: "third")
    try self.files.install(try WatchedFiles.pem(root), at: directory + "/bundle.pem", mode: 0o644)
    #expect(self.watcher.watchedDirectories == [self.files.directory])
    self.watcher.reconfigure([FederatedBundleSource(trustDomain: third, path: directory + "/bundle.pem")])
    #expect(self.watcher.watchedDirectories == [directory])
    #expect(self.served(third) == root.trustBundle)
    #expect(self.served(self.other) == nil)
    #expect(self.files.cache.current.trust?.removed == [self.other])
    // The new domain's file is followed: a change there is served.
    try await self.running {
      let next = try CAMaterial.generateRoot(trustDomain: "third.example", now: Date(), commonName: "next")
      try self.files.install(try WatchedFiles.pem(next), at: directory + "/bundle.pem", mode: 0o644)
      await self.files.clock.sleeper(until: self.settle)
      self.files.clock.advance(by: self.settle)
      await self.files.cache.waitUntil { $0.trust?.federated[third] == next.trustBundle }
    }
  }
}
