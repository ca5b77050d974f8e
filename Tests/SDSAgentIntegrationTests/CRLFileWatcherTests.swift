import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

@testable import SDSAgent

/// `CRLFileWatcher` following a real `ca-crl` file into a real identity table under the manual
/// clock: the file's CRL, verified against the own root, is served in the node's trust; a CRL no
/// trusted root signed is refused and counted, and the last good one stays served.
@Suite(.timeLimit(.minutes(1))) struct CRLFileWatcherTests {
  let files: WatchedFiles
  let follower: CRLFollower<ManualClock>
  let watcher: CRLFileWatcher<ManualClock>
  let settle = Duration.milliseconds(150)

  struct NoDistributionPoint: CRLFetcher {
    func fetch(_ point: CRLDistributionPoint) async throws(CRLFetchFailure) -> [UInt8] {
      throw CRLFetchFailure(.unreachable, "not in this test")
    }
  }

  init() throws {
    self.files = try WatchedFiles()
    let clock = self.files.clock
    self.follower = CRLFollower(
      host: self.files.table, fetcher: NoDistributionPoint(), clock: clock, now: { clock.date }, random: { 0.5 },
      refresh: .seconds(60), counters: self.files.counters, logger: self.files.logger)
    self.watcher = CRLFileWatcher(
      path: self.files.path("ca-crl.pem"), follower: self.follower, watching: self.files.service, clock: clock,
      settle: self.settle)
  }

  func crl(_ number: Int, signedBy signer: CAMaterial) throws -> String {
    try CertificateRevocationList(
      issuer: signer.certificate, issuerKey: signer.privateKey, number: number, entries: [],
      thisUpdate: self.files.clock.date, nextUpdate: self.files.clock.date + 3600
    ).pemString
  }

  var served: [Int] { self.files.cache.current.trust?.revocationLists.map(\.number) ?? [] }

  @Test func theFilesCRLIsServedAndAnUnverifiableOneRefused() async throws {
    try self.files.install(try self.crl(3, signedBy: self.files.ownRoot), at: self.files.path("ca-crl.pem"))
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await self.watcher.run() }
      await self.files.cache.waitUntil { $0.trust?.revocationLists.count == 1 }
      #expect(self.served == [3])
      let stranger = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "stranger")
      try self.files.install(try self.crl(9, signedBy: stranger), at: self.files.path("ca-crl.pem"))
      await self.files.clock.sleeper(until: self.settle)
      self.files.clock.advance(by: self.settle)
      await self.files.counters.waitUntil { $0[.crlFetchErrors] == 1 }
      #expect(self.served == [3])
      group.cancelAll()
    }
  }
}
