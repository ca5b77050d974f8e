import EnvoySDSProtos
import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import SwiftProtobuf
import Synchronization
import Testing
import X509

/// The revocation service under a manual clock, with the identity supervisor issuing from the
/// same embedded CA: every own root's list is served in ROOTCA and inside the SPIFFE validator's
/// bundle, signed again halfway through its validity, and a revocation re-issues its holder and
/// installs a list naming the revoked serial.
@Suite(.timeLimit(.minutes(1))) struct RevocationServiceTests {
  /// The ledger in memory.
  final class MemoryRecord: RevocationRecord {
    let ledger = Mutex(RevocationLedger(schedule: CRLSchedule(validity: .seconds(3600))))

    var issued: IssuedCertificates { self.ledger.withLock { $0.issued } }

    func record(_ certificate: IssuedCertificate) throws(CertificateAuthorityError) {
      self.ledger.withLock { $0.record(certificate, at: Fixtures.now) }
    }

    func revoke(_ request: Revocations.Request, reason: RevocationReason, at now: Date) throws -> Revocations.Outcome {
      self.ledger.withLock { $0.revoke(request, reason: reason, at: now) }
    }

    func lists(of issuers: [CRLIssuer], at now: Date) throws -> (
      lists: [CertificateRevocationList], nextSigning: Date
    ) {
      try self.ledger.withLock { ledger in
        ledger.prune(at: now)
        return try ledger.lists(of: issuers, at: now)
      }
    }
  }

  let clock = ManualClock(startDate: Fixtures.now)
  let record = MemoryRecord()
  let ca: EmbeddedCA
  let table: IdentityTable
  let identities: IdentitySupervisor<ManualClock>
  let service: RevocationService<ManualClock>

  init() throws {
    let clock = self.clock
    self.ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material), record: self.record)
    self.table = IdentityTable(
      pinned: Fixtures.identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(24 * 3600), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: clock.date)
    try self.table.installTrustBundle(self.ca.trustBundle)
    self.identities = IdentitySupervisor(
      table: self.table, authority: self.ca, counters: AgentCounters(), clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: Logger(label: "test"))
    self.service = RevocationService(
      ca: self.ca, record: self.record, host: self.table, clock: clock, now: { clock.date },
      logger: Logger(label: "test"))
  }

  func running(_ body: () async throws -> Void) async throws {
    try await self.identities.performDueWork(for: Fixtures.identity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.identities.run() }
      group.addTask { await self.service.run() }
      // The service signed its first lists and waits for the next signing, due at half validity.
      await self.clock.sleeper(until: .seconds(1800))
      try await body()
      group.cancelAll()
    }
  }

  var trust: ServedTrust? { self.table.pinnedCache.current.trust }
  var serial: CertificateSerial? { self.table.pinnedCache.current.svid.map { CertificateSerial($0.leaf.serialNumber) } }

  /// The CRLs in the own trust domain's SPIFFE validator bundle, as PEM blocks.
  func crlBlocks(in context: ServedTrust.Context?) throws -> Int {
    let context = try #require(context)
    let config = try Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig(
      unpackingAny: context.customValidatorConfig.typedConfig)
    let bundle = String(decoding: config.trustDomains.first?.trustBundle.inlineBytes ?? Data(), as: UTF8.self)
    return bundle.components(separatedBy: "-----BEGIN X509 CRL-----").count - 1
  }

  @Test func theRootsListIsServedInEveryOwnValidationContext() async throws {
    try await self.running {
      let lists = self.table.servedRevocationLists
      #expect(lists.count == 1)
      #expect(lists.first?.isSigned(by: Fixtures.material.certificate) == true)
      let rootCA = self.trust?.context(for: .validationContext)
      #expect(String(decoding: rootCA?.crl.inlineBytes ?? Data(), as: UTF8.self) == lists[0].pemString + "\n")
      let domain = TrustDomainName(of: Fixtures.identity)
      let inDomain = try self.crlBlocks(in: self.trust?.context(for: .trustDomain(domain, spiffeValidator: true)))
      let inAll = try self.crlBlocks(in: self.trust?.context(for: .allTrustDomains))
      #expect(inDomain == 1 && inAll == 1)
    }
  }

  @Test func theListIsSignedAgainAtHalfItsValidity() async throws {
    try await self.running {
      let first = try #require(self.table.servedRevocationLists.first)
      self.clock.advance(by: .seconds(1800))
      await self.clock.sleeper(until: .seconds(3600))
      let second = try #require(self.table.servedRevocationLists.first)
      #expect(second.number == first.number + 1)
      #expect(second.thisUpdate > first.thisUpdate)
    }
  }

  @Test func aRevocationReissuesItsHolderAndServesAListNamingIt() async throws {
    try await self.running {
      let revoked = try #require(self.serial)
      let result = try await self.service.revoke(.serial(revoked), reason: .keyCompromise)
      #expect(
        result.outcome
          == .revoked([
            RevokedCertificate(
              serial: revoked, revokedAt: self.clock.date, reason: .keyCompromise,
              notAfter: self.record.issued.row(serial: revoked)?.notAfter ?? .distantPast)
          ]))
      #expect(result.reissued == [Fixtures.identity])
      #expect(self.serial != nil && self.serial != revoked)
      let list = try #require(self.table.servedRevocationLists.first)
      #expect(list.revokes(revoked))
      #expect(!list.revokes(try #require(self.serial)))
    }
  }

  @Test func anUnknownSerialChangesNothing() async throws {
    try await self.running {
      let before = self.table.servedRevocationLists
      let unknown = try #require(CertificateSerial(hex: "0badc0de"))
      let result = try await self.service.revoke(.serial(unknown), reason: .unspecified)
      #expect(result.outcome == .unknownSerial(unknown))
      #expect(result.reissued.isEmpty)
      #expect(self.table.servedRevocationLists == before)
    }
  }

  @Test func afterARootSwitchTheRetiringRootKeepsSigningItsList() async throws {
    try await self.running {
      let next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "next")
      let bundle = self.ca.install(
        EmbeddedCA.Roots(
          signing: next, previous: Fixtures.material.certificate, previousKey: Fixtures.material.privateKey))
      try self.table.installTrustBundle(bundle)
      self.service.publish()
      let lists = self.table.servedRevocationLists
      #expect(lists.count == 2)
      #expect(lists.contains { $0.isSigned(by: Fixtures.material.certificate) })
      #expect(lists.contains { $0.isSigned(by: next.certificate) })
      let rootCA = String(
        decoding: self.trust?.context(for: .validationContext)?.crl.inlineBytes ?? Data(), as: UTF8.self)
      #expect(rootCA.components(separatedBy: "-----BEGIN X509 CRL-----").count == 3)
    }
  }

  @Test func noListIsServedWhileATrustedRootCannotSignOne() async throws {
    try await self.running {
      let previous = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "old")
      let bundle = self.ca.install(EmbeddedCA.Roots(signing: Fixtures.material, previous: previous.certificate))
      try self.table.installTrustBundle(bundle)
      self.service.publish()
      #expect(self.table.servedRevocationLists.isEmpty)
      #expect(self.trust?.context(for: .validationContext)?.hasCrl == false)
    }
  }
}
