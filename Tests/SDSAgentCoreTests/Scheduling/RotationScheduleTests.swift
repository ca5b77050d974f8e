import Foundation
import SDSAgentCore
import Testing

@Suite struct RotationScheduleTests {
  let issued = Date(timeIntervalSince1970: 1_000_000)
  var notAfter: Date { self.issued.addingTimeInterval(100) }

  @Test func renewsAtTheRatioWithoutJitter() {
    let schedule = RotationSchedule(ratio: 0.5, jitter: 0)
    #expect(
      schedule.decision(issuedAt: self.issued, notAfter: self.notAfter, now: self.issued, jitterSample: 1)
        == .renew(at: self.issued.addingTimeInterval(50)))
  }

  @Test(arguments: [(-1.0, 40.0), (0.0, 50.0), (1.0, 60.0), (5.0, 60.0)])
  func jitterMovesTheRenewalWithinItsBand(sample: Double, expectedOffset: Double) {
    let schedule = RotationSchedule(ratio: 0.5, jitter: 0.1)
    #expect(
      schedule.renewalTime(issuedAt: self.issued, notAfter: self.notAfter, jitterSample: sample)
        == self.issued.addingTimeInterval(expectedOffset))
  }

  @Test func renewsNowOncePastTheRenewalTime() {
    let schedule = RotationSchedule(ratio: 0.5, jitter: 0)
    #expect(
      schedule.decision(
        issuedAt: self.issued, notAfter: self.notAfter, now: self.issued.addingTimeInterval(50), jitterSample: 0)
        == .renewNow)
    #expect(
      schedule.decision(
        issuedAt: self.issued, notAfter: self.notAfter, now: self.issued.addingTimeInterval(99), jitterSample: 0)
        == .renewNow)
  }

  @Test func anExpiredSVIDIsExpired() {
    let schedule = RotationSchedule()
    #expect(
      schedule.decision(issuedAt: self.issued, notAfter: self.notAfter, now: self.notAfter, jitterSample: 0) == .expired
    )
  }
}

@Suite struct BackoffTests {
  @Test func growsExponentiallyUpToTheCap() {
    var backoff = Backoff(initial: .seconds(1), maximum: .seconds(10), multiplier: 2)
    let ceilings = (0..<6).map { _ in backoff.nextCeiling() }
    #expect(ceilings == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
    backoff.reset()
    #expect(backoff.nextCeiling() == .seconds(1))
  }

  @Test func fullJitterStaysUnderTheCeiling() {
    var backoff = Backoff(initial: .seconds(4), maximum: .seconds(60), multiplier: 2)
    #expect(backoff.nextDelay(sample: 0.5) == .seconds(2))
    #expect(backoff.nextDelay(sample: 1) == .seconds(8))
    #expect(backoff.nextDelay(sample: 0) == .zero)
  }
}
