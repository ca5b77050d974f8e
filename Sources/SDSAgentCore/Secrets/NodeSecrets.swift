import Synchronization

/// The secrets every identity on the node serves alike, stored once: one change is one revision,
/// however many identities serve it. Each identity's `SecretCache` joins them with its own SVID.
///
/// Also hands out the revisions of every identity's cache, under the same lock as these rows: a
/// view read under it sees every change below its highest revision, so a stream that compares
/// revisions never misses a change of the other part.
package final class NodeSecrets: Sendable {
  private struct State {
    var rows = SharedSecrets.empty
    var nextRevision: UInt64 = 1
    var nextSubscriberID = 0
    var subscribers: [Int: @Sendable (SecretChanges) -> Void] = [:]
  }

  private let state = Mutex(State())

  package init() {}

  /// The next revision, for a change `body` makes under the lock; it is used up only if `body`
  /// says so.
  func withRevision<Result: Sendable>(_ body: (UInt64) -> (result: Result, used: Bool)) -> Result {
    self.state.withLock { state in
      let (result, used) = body(state.nextRevision)
      if used { state.nextRevision += 1 }
      return result
    }
  }

  /// Reads the shared rows and, under the same lock, an identity's.
  func read<Result: Sendable>(_ body: (SharedSecrets) -> Result) -> Result {
    self.state.withLock { body($0.rows) }
  }

  /// Serves `trust` to every identity from now on, in place of the bundles issuances come with.
  func updateTrust(_ trust: ServedTrust) {
    self.mutate { $0.setTrust(trust, revision: $1) }
  }

  /// Serves these file secrets to every identity from now on; one revision if one changed.
  func updateFiles(_ contents: [String: FileSecretContent]) {
    self.mutate { $0.setFiles(contents, revision: $1) }
  }

  /// Serves these on-demand server certificates to every identity from now on.
  func updateOnDemand(_ certificates: [DNSName: ServerCertificate]) {
    self.mutate { $0.setOnDemand(certificates, revision: $1) }
  }

  /// Serves the JWT bundles `change` makes of the current ones to every identity from now on.
  package func updateJWTBundles(_ change: (inout JWTBundleSet) -> Void) {
    self.mutate { $0.updateJWTBundles(change, revision: $1) }
  }

  /// Serves `keys` as the session ticket keys `name` to every identity from now on (nil: no
  /// longer).
  package func updateSessionTicketKeys(_ keys: SessionTicketKeys?, named name: String) {
    self.mutate { $0.setSessionTicketKeys(keys, named: name, revision: $1) }
  }

  /// The last revision handed out, to a change of a shared row or of an identity's cache.
  package var revision: UInt64 {
    self.state.withLock { $0.nextRevision - 1 }
  }

  /// Subscriptions to the shared rows: one per subscription to any identity's cache.
  package var subscriberCount: Int {
    self.state.withLock { $0.subscribers.count }
  }

  func subscribe(_ onChange: @escaping @Sendable (SecretChanges) -> Void) -> Int {
    self.state.withLock { state in
      let id = state.nextSubscriberID
      state.nextSubscriberID += 1
      state.subscribers[id] = onChange
      return id
    }
  }

  func unsubscribe(_ id: Int) {
    _ = self.state.withLock { $0.subscribers.removeValue(forKey: id) }
  }

  private func mutate(_ body: (inout SharedSecrets, UInt64) -> Void) {
    let (subscribers, changes): ([@Sendable (SecretChanges) -> Void], SecretChanges) = self.state.withLock { state in
      let before = state.rows
      body(&state.rows, state.nextRevision)
      let changes = state.rows.changes(since: before)
      guard !changes.isEmpty else { return ([], []) }
      state.nextRevision += 1
      return (Array(state.subscribers.values), changes)
    }
    for subscriber in subscribers {
      subscriber(changes)
    }
  }
}
