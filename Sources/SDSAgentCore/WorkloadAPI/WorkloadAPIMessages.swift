import Synchronization

/// One kind of Workload API message per identity, built once per revision of what it carries and
/// shared by all of that identity's streams: a rotation pushed to thousands of `FetchX509SVID`
/// streams writes the key as PKCS#8 DER and the chain and bundles as DER once, as `SecretCache`'s
/// memo packs an SDS secret once per revision.
///
/// Entries are keyed by the identity's cache and hold it weakly, so a cache that is gone never
/// lends its message to a new one at the same address.
package final class WorkloadAPIMessages<Message: Sendable>: Sendable {
  private struct Entry {
    weak var cache: SecretCache?
    let revisions: [UInt64]
    let message: Message
  }

  private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

  /// Identities whose messages are kept; past it, the ones whose cache is gone are dropped, and
  /// if that is not enough the memo starts over.
  static var kept: Int { 4096 }

  package init() {}

  /// The message `cache`'s streams carry at `revisions`: built by the first stream that sends it,
  /// a copy (a retain) for the others.
  package func message(
    for cache: SecretCache, at revisions: [UInt64], build: () throws(WorkloadAPIFailure) -> Message
  ) throws(WorkloadAPIFailure) -> Message {
    let key = ObjectIdentifier(cache)
    let cached = self.entries.withLock { entries -> Message? in
      guard let entry = entries[key], entry.cache === cache, entry.revisions == revisions else { return nil }
      return entry.message
    }
    if let cached { return cached }
    let message = try build()
    self.entries.withLock { entries in
      if entries[key] == nil, entries.count >= Self.kept {
        entries = entries.filter { $0.value.cache != nil }
        if entries.count >= Self.kept { entries.removeAll(keepingCapacity: true) }
      }
      // Revisions come from one counter and only grow: a stream that built an older message late
      // does not replace a newer one.
      if let entry = entries[key], entry.cache === cache, entry.revisions.max() ?? 0 > revisions.max() ?? 0 { return }
      entries[key] = Entry(cache: cache, revisions: revisions, message: message)
    }
    return message
  }

  /// Identities with a message kept, for tests.
  var count: Int { self.entries.withLock { $0.count } }
}
