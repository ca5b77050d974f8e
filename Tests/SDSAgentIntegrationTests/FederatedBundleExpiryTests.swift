import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// A federated root leaves its domain's bundle when it expires, its file unchanged, on the
/// identity supervisor's timer under the manual clock: the roots still valid stay; a file whose
/// roots all expired is served as reading it then would (nothing), and counted.
@Suite(.timeLimit(.minutes(1))) struct FederatedBundleExpiryTests {
  let files: WatchedFiles
  let other: TrustDomainName
  let short: CAMaterial
  let long: CAMaterial

  init() throws {
    self.files = try WatchedFiles()
    self.other = try TrustDomainName(parsing: "other.example")
    let now = self.files.clock.date
    self.short = try CAMaterial.generateRoot(
      trustDomain: "other.example", now: now, validity: .seconds(30), commonName: "short")
    self.long = try CAMaterial.generateRoot(trustDomain: "other.example", now: now, commonName: "long")
  }

  func watcher(serving roots: [CAMaterial]) throws -> FederatedBundleWatcher {
    let path = self.files.path("other.pem")
    try self.files.install(try roots.map(WatchedFiles.pem).joined(), at: path, mode: 0o644)
    return try FederatedBundleWatcher(
      sources: [FederatedBundleSource(trustDomain: self.other, path: path)], table: self.files.table,
      counters: self.files.counters, watching: self.files.service, clock: self.files.clock, logger: self.files.logger)
  }

  var deadline: Date? { self.files.table.trustSchedule.deadline(of: .federatedExpiry(self.other)) }

  @Test func anExpiredRootLeavesTheBundleAndTheNextExpiryIsScheduled() async throws {
    let watcher = try self.watcher(serving: [self.short, self.long])
    #expect(self.files.cache.current.trust?.federated[self.other]?.roots.count == 2)
    #expect(self.deadline == self.short.certificate.notValidAfter.addingTimeInterval(1))
    try await self.files.supervising {
      await self.files.cache.waitUntil { $0.svid != nil }
      let revision = self.files.table.node.revision
      await self.files.clock.sleepers(atLeast: 1)
      self.files.clock.advance(by: .seconds(40))
      await self.files.cache.waitUntil { $0.trust?.federated[self.other] == self.long.trustBundle }
      #expect(self.files.table.node.revision == revision + 1, "the expiry is not one revision for the node")
      #expect(self.deadline == self.long.certificate.notValidAfter.addingTimeInterval(1))
    }
    let entry = try #require(watcher.current.first)
    #expect(entry.bundle == self.long.trustBundle)
    #expect(entry.lastError == nil)
    #expect(self.files.counters[.trustBundleErrors] == 0)
  }

  @Test func aFileWhoseRootsAllExpiredIsNoLongerServedAndIsCounted() async throws {
    let watcher = try self.watcher(serving: [self.short])
    #expect(self.files.cache.current.trust?.federated[self.other] == self.short.trustBundle)
    try await self.files.supervising {
      await self.files.clock.sleepers(atLeast: 1)
      self.files.clock.advance(by: .seconds(40))
      await self.files.cache.waitUntil { $0.trust?.federated[self.other] == nil }
      await self.files.counters.waitUntil { $0[.trustBundleErrors] == 1 }
    }
    #expect(self.files.cache.current.trust?.removed == [self.other])
    let reasons = self.files.counters.series.filter { $0.series.name == .trustBundleErrors }
      .flatMap { $0.series.labels.filter { $0.name == "reason" }.map(\.value) }
    #expect(reasons == ["all_expired"])
    let entry = try #require(watcher.current.first)
    #expect(entry.bundle == nil)
    #expect(entry.lastError?.hasPrefix("all_expired") == true)
    #expect(self.deadline == nil)
  }

  @Test func aDomainRemovedByReloadHasNoExpiryScheduled() throws {
    let watcher = try self.watcher(serving: [self.short])
    #expect(self.deadline != nil)
    watcher.reconfigure([])
    #expect(self.deadline == nil)
  }
}
