import Foundation
import SDSAgentCore
import Testing

/// The lifecycle value on its own: every transition, with time passed in.
@Suite struct IdentityLifecycleTests {
  static let workload = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  static let settings = IdentitySettings(
    keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
    backoff: Backoff(initial: .seconds(4), maximum: .seconds(4)))
  let t0 = Fixtures.now
  let idle = Duration.seconds(600)

  func at(_ seconds: Double) -> Date { self.t0.addingTimeInterval(seconds) }

  func validity(issuedAt seconds: Double, ttl: Double = 100) -> IdentityLifecycle.Validity {
    .init(serial: "s\(Int(seconds))", issuedAt: self.at(seconds), notAfter: self.at(seconds + ttl))
  }

  func pinned() -> IdentityLifecycle {
    IdentityLifecycle(identity: Fixtures.identity, settings: Self.settings, credential: .agent, isPinned: true, now: t0)
  }

  func workload() -> IdentityLifecycle {
    IdentityLifecycle(identity: Self.workload, settings: Self.settings, credential: .agent, isPinned: false, now: t0)
  }

  @Test func aPinnedIdentityAsksForItsFirstCertificateAtOnce() {
    var lifecycle = self.pinned()
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == .distantPast)
    #expect(lifecycle.nextWork(now: self.t0, idleTimeout: self.idle) == .issue(.agent, retries: true))
    #expect(lifecycle.phase == .issuing)
    #expect(lifecycle.nextWork(now: self.t0, idleTimeout: self.idle) == nil)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == nil)
  }

  @Test func servesThenRenewsAtTheScheduledTime() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0), credential: .agent, jitterSample: 0)
    #expect(lifecycle.phase == .serving)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == self.at(50))
    #expect(lifecycle.nextWork(now: self.at(49), idleTimeout: self.idle) == nil)
    #expect(lifecycle.nextWork(now: self.at(50), idleTimeout: self.idle) == .issue(.agent, retries: true))
    #expect(lifecycle.phase == .renewing)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == self.at(100))
  }

  @Test func aFailedRenewalKeepsTheCertificateAndRetriesNoLaterThanItsExpiry() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0, ttl: 10), credential: .agent, jitterSample: 0)
    _ = lifecycle.nextWork(now: self.at(5), idleTimeout: self.idle)
    lifecycle.issuanceFailed(CertificateAuthorityError(.unavailable, "down"), retries: true, now: self.at(5), sample: 1)
    #expect(lifecycle.phase.name == "failing")
    #expect(lifecycle.isServable(at: self.at(5)))
    #expect(lifecycle.retryAt == self.at(9))
    _ = lifecycle.nextWork(now: self.at(9), idleTimeout: self.idle)
    lifecycle.issuanceFailed(CertificateAuthorityError(.unavailable, "down"), retries: true, now: self.at(9), sample: 1)
    #expect(lifecycle.retryAt == self.at(10))
    #expect(lifecycle.nextWork(now: self.at(10), idleTimeout: self.idle) == .withdraw(serial: "s0"))
    #expect(lifecycle.phase == .expired)
    #expect(!lifecycle.isServable(at: self.at(10)))
    #expect(lifecycle.nextWork(now: self.at(10), idleTimeout: self.idle) == .issue(.agent, retries: true))
    #expect(lifecycle.phase == .issuing)
  }

  @Test func aFailedRenewalWaitsForItsRetryInsteadOfRenewingAgainAtOnce() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0), credential: .agent, jitterSample: 0)
    #expect(lifecycle.nextWork(now: self.at(50), idleTimeout: self.idle) == .issue(.agent, retries: true))
    lifecycle.issuanceFailed(
      CertificateAuthorityError(.unavailable, "down"), retries: true, now: self.at(50), sample: 1)
    #expect(lifecycle.nextWork(now: self.at(50), idleTimeout: self.idle) == nil)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == self.at(54))
  }

  @Test func aRefusedFirstIssuanceOfAWorkloadIsNotRetried() {
    var lifecycle = self.workload()
    lifecycle.streamOpened()
    lifecycle.request(credential: .forwardedToken("t"), retries: false)
    #expect(lifecycle.nextWork(now: self.t0, idleTimeout: self.idle) == .issue(.forwardedToken("t"), retries: false))
    lifecycle.issuanceFailed(CertificateAuthorityError(.refused, "no"), retries: false, now: self.t0, sample: 1)
    #expect(lifecycle.retryAt == nil)
    #expect(!lifecycle.isScheduled)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == nil)
  }

  @Test func aRetryableFirstFailureSchedulesTheIdentity() {
    var lifecycle = self.workload()
    lifecycle.streamOpened()
    lifecycle.request(retries: true)
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issuanceFailed(CertificateAuthorityError(.unavailable, "down"), retries: true, now: self.t0, sample: 1)
    #expect(lifecycle.isScheduled)
    #expect(lifecycle.retryAt == self.at(4))
  }

  @Test func aScheduledIdentityRetriesEvenARefusal() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0), credential: .agent, jitterSample: 0)
    _ = lifecycle.nextWork(now: self.at(50), idleTimeout: self.idle)
    lifecycle.issuanceFailed(CertificateAuthorityError(.refused, "no"), retries: true, now: self.at(50), sample: 1)
    #expect(lifecycle.retryAt == self.at(54))
  }

  @Test func anIdleWorkloadIsEvictedAfterTheTimeoutButNotWhileAStreamIsOpen() {
    var lifecycle = self.workload()
    lifecycle.streamOpened()
    lifecycle.request(retries: true)
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0, ttl: 3600), credential: .agent, jitterSample: 0)
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == self.at(1800))
    #expect(lifecycle.nextWork(now: self.at(1000), idleTimeout: self.idle) == nil)
    lifecycle.streamClosed(now: self.at(1000))
    #expect(lifecycle.idleSince == self.at(1000))
    #expect(lifecycle.nextDeadline(idleTimeout: self.idle) == self.at(1600))
    #expect(lifecycle.nextWork(now: self.at(1599), idleTimeout: self.idle) == nil)
    #expect(lifecycle.nextWork(now: self.at(1600), idleTimeout: self.idle) == .evict)
  }

  @Test func thePinnedIdentityIsNeverEvicted() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0, ttl: 3600), credential: .agent, jitterSample: 0)
    #expect(lifecycle.streams == 0)
    #expect(lifecycle.nextDeadline(idleTimeout: .seconds(1)) == self.at(1800))
    #expect(lifecycle.nextWork(now: self.at(1000), idleTimeout: .seconds(1)) == nil)
  }

  @Test func aNewLifetimeAsksForANewCertificateAndANewScheduleMovesTheRenewal() {
    var lifecycle = self.pinned()
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0), credential: .agent, jitterSample: 0)
    var later = Self.settings
    later.schedule = RotationSchedule(ratio: 0.8, jitter: 0)
    #expect(lifecycle.reconfigure(later) == false)
    #expect(lifecycle.renewAt == self.at(80))
    #expect(lifecycle.nextWork(now: self.at(1), idleTimeout: self.idle) == nil)
    var shorter = later
    shorter.ttl = .seconds(30)
    #expect(lifecycle.reconfigure(shorter) == true)
    lifecycle.request(retries: true)
    #expect(lifecycle.nextWork(now: self.at(1), idleTimeout: self.idle) == .issue(.agent, retries: true))
    #expect(lifecycle.phase == .renewing)
  }

  @Test func anAcceptedForwardedTokenBecomesTheRenewalCredential() {
    var lifecycle = self.workload()
    lifecycle.streamOpened()
    lifecycle.request(credential: .forwardedToken("fresh"), retries: false)
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: self.idle)
    lifecycle.issued(self.validity(issuedAt: 0), credential: .forwardedToken("fresh"), jitterSample: 0)
    #expect(lifecycle.credential == .forwardedToken("fresh"))
    #expect(
      lifecycle.nextWork(now: self.at(50), idleTimeout: self.idle) == .issue(.forwardedToken("fresh"), retries: true))
  }
}
