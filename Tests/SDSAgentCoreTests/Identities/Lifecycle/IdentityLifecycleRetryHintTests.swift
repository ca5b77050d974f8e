import Foundation
import SDSAgentCore
import Testing

/// A CA's retry hint (`grpc-retry-pushback-ms`) replaces the backoff: never earlier, jitter on top.
@Suite struct IdentityLifecycleRetryHintTests {
  static let settings = IdentitySettings(
    keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
    backoff: Backoff(initial: .seconds(1), maximum: .seconds(4)))
  let t0 = Fixtures.now
  func at(_ seconds: Double) -> Date { self.t0.addingTimeInterval(seconds) }

  func failed(hint: Duration?, sample: Double) -> IdentityLifecycle {
    var lifecycle = IdentityLifecycle(
      identity: Fixtures.identity, settings: Self.settings, credential: .agent, isPinned: true, now: self.t0)
    _ = lifecycle.nextWork(now: self.t0, idleTimeout: .seconds(600))
    lifecycle.issuanceFailed(
      CertificateAuthorityError(.unavailable, "over capacity", retryAfter: hint), retries: true, now: self.t0,
      sample: sample)
    return lifecycle
  }

  @Test func theRetryComesNoEarlierThanTheHint() {
    #expect(self.failed(hint: .seconds(3), sample: 0).retryAt == self.at(3))
    #expect(self.failed(hint: .seconds(3), sample: 0.5).retryAt == self.at(4.5))
    #expect(self.failed(hint: .seconds(3), sample: 1).retryAt == self.at(6))
    // Without a hint, the backoff: full jitter from zero.
    #expect(self.failed(hint: nil, sample: 0).retryAt == self.t0)
  }

  @Test func theJitterOnTopIsBoundedByTheBackoffsMaximum() {
    #expect(self.failed(hint: .seconds(30), sample: 1).retryAt == self.at(34))
    #expect(IdentityLifecycle.delay(after: .milliseconds(200), maximum: .seconds(4), sample: 2) == .milliseconds(400))
  }
}
