import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

@Suite struct SecretCacheTests {
  @Test func revisionsMoveOnlyForWhatChanged() throws {
    let cache = SecretCache()
    try cache.update(with: Fixtures.issue())
    let first = cache.current
    try cache.update(with: Fixtures.issue())
    let second = cache.current
    #expect(second.svidRevision > first.svidRevision)
    #expect(second.trustBundleRevision == first.trustBundleRevision)
    cache.withdrawSVID()
    #expect(cache.current.svid == nil)
    #expect(cache.current.trustBundle != nil)
  }

  @Test func subscribersAreSignalledAndRemovedWhenTheyStop() async throws {
    let cache = SecretCache()
    do {
      let changes = cache.changes()
      #expect(cache.subscriberCount == 1)
      try cache.update(with: Fixtures.issue())
      try cache.update(with: Fixtures.issue())
      let firstWakeUp = Milestone()
      let revisions = try await withThrowingTaskGroup(of: (UInt64, UInt64).self) { group in
        group.addTask {
          var iterator = changes.makeAsyncIterator()
          await iterator.next()
          let first = cache.current.svidRevision
          firstWakeUp.reach()
          await iterator.next()
          return (first, cache.current.svidRevision)
        }
        await firstWakeUp.wait()
        // Only the newest signal is kept: one wake-up for two changes, so the second next()
        // waits for this third change. Had a second signal been buffered, it would have returned
        // at once and read revision 2.
        try cache.update(with: Fixtures.issue())
        return try await group.next()
      }
      #expect(revisions?.0 == 2)
      #expect(revisions?.1 == 3)
    }
    #expect(cache.subscriberCount == 0)
  }

  @Test func subscribersAreToldWhichKindsChanged() throws {
    let cache = SecretCache()
    let signals = Mutex<[SecretChanges]>([])
    let subscription = cache.subscribe { changes in signals.withLock { $0.append(changes) } }
    defer { subscription.cancel() }
    // The first issuance brings the trust (bundle and, empty, the federation); the next ones the
    // same trust.
    try cache.update(with: Fixtures.issue())
    try cache.update(with: Fixtures.issue())
    let partner = try CAMaterial.generateRoot(trustDomain: "partner.example", now: Fixtures.now)
    cache.updateTrust(
      try ServedTrust(
        ownDomain: try TrustDomainName(parsing: "cluster.local"), own: Fixtures.material.trustBundle,
        federated: [try TrustDomainName(parsing: "partner.example"): partner.trustBundle]))
    cache.withdrawSVID()
    cache.withdrawSVID()
    #expect(signals.withLock { $0 } == [[.svid, .trustBundle, .federation], .svid, .federation, .svid])
  }
}
