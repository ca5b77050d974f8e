import SDSAgentCore
import SDSAgentTestSupport
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
      var changes = cache.changes().makeAsyncIterator()
      #expect(cache.subscriberCount == 1)
      try cache.update(with: Fixtures.issue())
      try cache.update(with: Fixtures.issue())
      // Only the newest signal is kept: one wake-up for two changes.
      await changes.next()
      #expect(cache.current.svidRevision == 2)
    }
    #expect(cache.subscriberCount == 0)
  }
}
