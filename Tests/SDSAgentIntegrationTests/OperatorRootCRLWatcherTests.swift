import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

@testable import SDSAgent

/// The `ca-root-crl` file of an operator CA that signs through an intermediate, watched into a
/// real identity table under the manual clock: the root's list, verified against the own root,
/// joins the intermediate's own list in the SPIFFE validator's contexts; an older list and one no
/// trusted root signed are refused and counted, the last good one kept; past its nextUpdate it is
/// no longer served there (fail open) while ROOTCA keeps the intermediate's list.
@Suite(.timeLimit(.minutes(1))) struct OperatorRootCRLWatcherTests {
  let files: WatchedFiles
  let operatorCA: OperatorIntermediate
  let follower: CRLFollower<ManualClock>
  let watcher: CRLFileWatcher<ManualClock>
  let settle = Duration.milliseconds(150)

  init() throws {
    self.files = try WatchedFiles()
    let clock = self.files.clock
    self.operatorCA = try OperatorIntermediate(now: clock.date)
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.operatorCA.material))
    try self.files.table.installTrustBundle(ca.trustBundle)
    let intermediateList = try CertificateRevocationList(
      issuer: self.operatorCA.material.certificate, issuerKey: self.operatorCA.material.privateKey, number: 1,
      entries: [], thisUpdate: clock.date, nextUpdate: clock.date + 7200)
    try self.files.table.installRevocationLists([intermediateList], intermediates: ca.roots.intermediates)
    self.follower = CRLFollower(
      host: OperatorChainCRLHost(table: self.files.table, ca: ca), fetcher: CRLFileWatcherTests.NoDistributionPoint(),
      clock: clock, now: { clock.date }, random: { 0.5 }, refresh: .seconds(60), counters: self.files.counters,
      logger: self.files.logger)
    self.watcher = CRLFileWatcher(
      path: self.files.path("root.crl"), follower: self.follower, watching: self.files.service, clock: clock,
      settle: self.settle)
  }

  var trust: ServedTrust? { self.files.cache.current.trust }
  var spiffeNumbers: [Int] { self.trust?.revocationCoverage.spiffe.map(\.number) ?? [] }

  func write(_ list: CertificateRevocationList, settled after: Duration) async throws {
    try self.files.install(list.pemString, at: self.files.path("root.crl"))
    await self.files.clock.sleeper(until: after + self.settle)
    self.files.clock.advance(by: self.settle)
  }

  @Test func theRootsListCompletesTheChainUntilItsNextUpdate() async throws {
    let start = self.files.clock.date
    #expect(self.trust?.revocationCoverage.spiffe.isEmpty == true && self.files.table.revocationGap != nil)
    try self.files.install(
      try self.operatorCA.rootList(number: 5, now: start).pemString, at: self.files.path("root.crl"))
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await self.watcher.run() }
      group.addTask { await self.follower.run() }
      await self.files.cache.waitUntil { $0.trust?.revocationCoverage.spiffe.count == 2 }
      #expect(self.spiffeNumbers == [1, 5] && self.files.table.revocationGap == nil)

      try await self.write(try self.operatorCA.rootList(number: 4, now: start), settled: .zero)
      await self.files.counters.waitUntil { $0[.crlFetchErrors] == 1 }
      let stranger = try OperatorIntermediate(now: start)
      try await self.write(try stranger.rootList(number: 9, now: start), settled: self.settle)
      await self.files.counters.waitUntil { $0[.crlFetchErrors] == 2 }
      #expect(self.spiffeNumbers == [1, 5])

      self.files.clock.advance(by: .seconds(3600))
      await self.files.cache.waitUntil { $0.trust?.revocationCoverage.spiffe.isEmpty == true }
      let rootCA = self.trust?.context(for: .validationContext)
      #expect(rootCA?.hasCrl == true && rootCA?.onlyVerifyLeafCertCrl == true)
      #expect(self.files.table.revocationGap != nil)
      group.cancelAll()
    }
  }
}
