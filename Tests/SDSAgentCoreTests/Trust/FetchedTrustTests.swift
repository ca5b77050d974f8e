import Foundation
import SDSAgentCore
import Testing
import X509

/// Fetch mode's own bundle: the CA's roots, the `ca-root` file's, and roots the CA stopped
/// sending until their leaves have expired.
@Suite struct FetchedTrustTests {
  static let old = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "old")
    .certificate
  static let new = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now, commonName: "new")
    .certificate
  let now = Fixtures.now

  @Test func theBundleIsTheUnionOfTheResponseAndTheFile() {
    var trust = FetchedTrust(fileRoots: [Self.new])
    #expect(trust.bundle.roots == [Self.new])
    trust.observe(response: [Self.old], now: self.now, retention: .seconds(100))
    #expect(Set(trust.bundle.roots) == [Self.old, Self.new])
    trust.observe(response: [Self.old, Self.new], now: self.now, retention: .seconds(100))
    #expect(trust.bundle.roots.count == 2)
  }

  @Test func aRootTheCAStopsSendingStaysUntilItsLeavesHaveExpired() {
    var trust = FetchedTrust()
    trust.observe(response: [Self.old], now: self.now, retention: .seconds(100))
    trust.observe(response: [Self.new], now: self.now.addingTimeInterval(10), retention: .seconds(100))
    #expect(Set(trust.bundle.roots) == [Self.old, Self.new])
    #expect(trust.nextExpiry == self.now.addingTimeInterval(110))
    trust.prune(now: self.now.addingTimeInterval(109))
    #expect(Set(trust.bundle.roots) == [Self.old, Self.new])
    trust.prune(now: self.now.addingTimeInterval(110))
    #expect(trust.bundle.roots == [Self.new])
    #expect(trust.nextExpiry == nil)
  }

  @Test func aRootTheCASendsAgainIsNoLongerRetained() {
    var trust = FetchedTrust()
    trust.observe(response: [Self.old], now: self.now, retention: .seconds(100))
    trust.observe(response: [Self.new], now: self.now, retention: .seconds(100))
    trust.observe(response: [Self.old, Self.new], now: self.now, retention: .seconds(100))
    #expect(trust.retained.isEmpty)
    trust.prune(now: self.now.addingTimeInterval(1000))
    #expect(Set(trust.bundle.roots) == [Self.old, Self.new])
  }
}
