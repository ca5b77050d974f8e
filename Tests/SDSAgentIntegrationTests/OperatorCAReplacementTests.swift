import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// `OperatorCAReplacement` under the manual clock, with the identity supervisor issuing from the
/// same embedded CA: the new CA signs at once, the old root stays in `ROOTCA` until the last
/// leaf it signed has expired, then leaves it; the same CA again changes nothing.
@Suite(.timeLimit(.minutes(1))) struct OperatorCAReplacementTests {
  let files: WatchedFiles
  let ca: EmbeddedCA
  let supervisor: IdentitySupervisor<ManualClock>
  let replacement: OperatorCAReplacement

  init() throws {
    self.files = try WatchedFiles()
    let clock = self.files.clock
    self.ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.files.ownRoot))
    self.supervisor = IdentitySupervisor(
      table: self.files.table, authority: self.ca, counters: self.files.counters, clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: self.files.logger)
    self.replacement = OperatorCAReplacement(
      ca: self.ca, table: self.files.table, now: { clock.date }, logger: self.files.logger)
  }

  var served: Set<Certificate> { Set(self.files.cache.current.trust?.own.roots ?? []) }

  @Test func theOldRootLeavesTheBundleWhenTheLastLeafItSignedHasExpired() async throws {
    let old = self.files.ownRoot.certificate
    try await self.supervisor.performDueWork(for: self.files.table.pinnedIdentity)
    let oldLeaf = try #require(self.files.cache.current.svid)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.supervisor.run() }
      let next = try CAMaterial.generateRoot(
        trustDomain: "cluster.local", now: self.files.clock.date, commonName: "next")
      try await self.replacement.replace(with: next)
      let retireAt = try #require(self.replacement.previousRootRetiresAt)
      #expect(retireAt >= oldLeaf.notAfter)
      #expect(self.served == [old, next.certificate])
      #expect(self.files.cache.current.svid?.leaf.issuer == next.certificate.subject, "not re-issued by the new CA")

      let untilRetirement = Duration.seconds(retireAt.timeIntervalSince(self.files.clock.date))
      self.files.clock.advance(by: untilRetirement - .seconds(1))
      #expect(self.served.contains(old), "the old root left while a leaf it signed was still valid")
      self.files.clock.advance(by: .seconds(2))
      await self.files.cache.waitUntil { Set($0.trust?.own.roots ?? []) == [next.certificate] }
      #expect(self.replacement.previousRootRetiresAt == nil)

      // The CA signing already: nothing to replace, nothing retires.
      try await self.replacement.replace(with: next)
      #expect(self.replacement.previousRootRetiresAt == nil)
      group.cancelAll()
    }
  }

  @Test func aRetirementTakenBeforeAnotherReplacementLeavesThatReplacementsPreviousRoot() async throws {
    try await self.supervisor.performDueWork(for: self.files.table.pinnedIdentity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.supervisor.run() }
      let now = self.files.clock.date
      let second = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: now, commonName: "second")
      let third = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: now, commonName: "third")
      try await self.replacement.replace(with: second)
      // The timer took the first root's retirement; before it is made, the CA is replaced again.
      let taken = self.files.table.trustSchedule.takeDue(now: .distantFuture)
      #expect(taken.map(\.key) == [.operatorRetirement])
      try await self.replacement.replace(with: third)
      for (_, change) in taken { _ = try change.perform(now) }
      #expect(self.served == [second.certificate, third.certificate], "the second root retired early")
      #expect(self.replacement.previousRootRetiresAt != nil)
      group.cancelAll()
    }
  }
}
