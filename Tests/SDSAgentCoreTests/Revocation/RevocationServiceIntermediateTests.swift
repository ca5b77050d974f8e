import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The revocation service of an agent whose operator CA signs through an intermediate: it signs
/// the intermediate's list, which names each revoked leaf and is served in ROOTCA checked on the
/// leaf only; the root's list the operator gives completes the SPIFFE validator's contexts.
@Suite(.timeLimit(.minutes(1))) struct RevocationServiceIntermediateTests {
  let clock = ManualClock(startDate: Fixtures.now)
  let record = RevocationServiceTests.MemoryRecord()
  let operatorCA: OperatorIntermediate
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>
  let service: RevocationService<ManualClock>

  init() throws {
    let clock = self.clock
    self.operatorCA = try OperatorIntermediate(now: Fixtures.now)
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.operatorCA.material), record: self.record)
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(24 * 3600), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    try self.table.installTrustBundle(ca.trustBundle)
    self.identities = IdentitySupervisor(
      table: self.table, authority: ca, counters: AgentCounters(), clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    self.service = RevocationService(
      ca: ca, record: self.record, host: self.table, clock: clock, now: { clock.date },
      logger: Logger(label: "test"), throughIntermediates: true)
  }

  var trust: ServedTrust? { self.table.pinnedCache.current.trust }

  @Test func theIntermediatesListNamesARevokedLeafAndTheRootsListCompletesTheChain() async throws {
    try await self.identities.performDueWork(for: Fixtures.identity)
    self.service.publish()
    let first = try #require(self.table.servedRevocationLists.first)
    #expect(self.table.servedRevocationLists.count == 1)
    #expect(first.isSigned(by: self.operatorCA.material.certificate))
    #expect(self.trust?.context(for: .validationContext)?.onlyVerifyLeafCertCrl == true)
    #expect(self.table.revocationGap != nil)

    let leaf = try #require(self.table.pinnedCache.current.svid?.leaf)
    let revoked = CertificateSerial(leaf.serialNumber)
    _ = try self.record.revoke(.serial(revoked), reason: .keyCompromise, at: self.clock.date)
    self.service.publish()
    let list = try #require(self.table.servedRevocationLists.first)
    #expect(list.revokes(revoked) && list.number > first.number)

    try self.table.installChainRevocationLists([try self.operatorCA.rootList(number: 1, now: Fixtures.now)])
    #expect(self.table.servedRevocationLists.count == 2)
    #expect(self.trust?.revocationCoverage.spiffe.count == 2)
    #expect(self.table.revocationGap == nil)
  }
}
