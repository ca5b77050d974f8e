import Foundation
import SwiftProtobuf
import Synchronization

/// Holds what one identity serves that is its own (its SVID) and joins it with the node's shared
/// rows (`NodeSecrets`) when read; tells subscribers when either part changes.
///
/// Subscribers get a change signal, not the secrets: each keeps only the newest signal
/// (`bufferingNewest(1)`) and reads `current` when it gets to it, so a slow SDS stream never
/// holds the cache back or piles up old certificates.
package final class SecretCache: Sendable {
  private struct State {
    var own = IdentitySecrets.empty
    var nextSubscriberID = 0
    var subscribers: [Int: @Sendable (SecretChanges) -> Void] = [:]
  }

  /// The rows every identity shares; also the source of this cache's revisions.
  package let node: NodeSecrets
  private let state = Mutex(State())
  /// Each secret as responses carry it, encoded once per revision for every stream.
  private let encodings = Mutex(RevisionMemo<RequestedSecret, Google_Protobuf_Any>(limit: 1024))
  /// Each `StreamSecrets` response but its nonce, by the secrets it carries, encoded once per
  /// revision for every stream subscribed to them; at most 64 of them, each at most
  /// `responseBytesKept`, so that a caller cycling through subscriptions holds at most 1 MiB here.
  private let responses = Mutex(RevisionMemo<[RequestedSecret], [UInt8]>(limit: 64))

  /// The largest response kept for other streams (a certificate and key, or a bundle, are a few
  /// kilobytes); a larger one is encoded for each stream.
  static let responseBytesKept = 16 * 1024

  /// A cache joined with `node`'s shared rows; without one, with rows of its own.
  package init(node: NodeSecrets = NodeSecrets()) {
    self.node = node
  }

  /// `requested` at `revision`, packed as responses carry it: encoded by the first stream that
  /// sends it, copied by the others (a rotation pushes the same secret to every stream). Distinct
  /// names kept: 1,024.
  func encoded(
    _ requested: RequestedSecret, revision: UInt64, encode: () throws -> Google_Protobuf_Any
  ) rethrows -> Google_Protobuf_Any {
    try Self.memoized(in: self.encodings, requested, revision: revision, make: encode)
  }

  /// The bytes of a `StreamSecrets` response carrying `resources` at `revision`, all but its
  /// nonce: encoded by the first stream that sends it, shared by the others. Distinct
  /// subscriptions kept: 64.
  func encodedResponse(
    _ resources: [RequestedSecret], revision: UInt64, encode: () throws -> [UInt8]
  ) rethrows -> [UInt8] {
    try Self.memoized(in: self.responses, resources, revision: revision, make: encode) {
      $0.count <= Self.responseBytesKept
    }
  }

  private static func memoized<Key: Hashable & Sendable, Value: Sendable>(
    in memo: borrowing Mutex<RevisionMemo<Key, Value>>, _ key: Key, revision: UInt64, make: () throws -> Value,
    keeps: (Value) -> Bool = { _ in true }
  ) rethrows -> Value {
    if let kept = memo.withLock({ $0.value(for: key, at: revision) }) { return kept }
    let value = try make()
    if keeps(value) { memo.withLock { $0.keep(value, for: key, at: revision) } }
    return value
  }

  /// The identity's secrets joined with the shared rows, both read under the node's lock.
  package var current: ServedSecrets {
    self.node.read { shared in
      ServedSecrets(identity: self.state.withLock { $0.own }, shared: shared)
    }
  }

  package var subscriberCount: Int {
    self.state.withLock { $0.subscribers.count }
  }

  /// Serves `svid` and, unless the node has trust installed, its bundle as the only bundle of its
  /// trust domain, from now on.
  package func update(with issued: IssuedSVID) throws(CertificateAuthorityError) {
    let trust: ServedTrust
    if let current = self.state.withLock({ $0.own.trust.trust }) {
      trust = current.own == issued.trustBundle ? current : try current.replacingOwn(with: issued.trustBundle)
    } else {
      trust = try ServedTrust(ownDomain: TrustDomainName(of: issued.certifiedKey.identity), own: issued.trustBundle)
    }
    try self.update(with: issued.certifiedKey, trust: trust)
  }

  /// Serves `svid` from now on, and `trust` (if given) where the node has none installed; the
  /// bundles are pushed only if they changed.
  package func update(with svid: CertifiedKey, trust: ServedTrust?) throws(CertificateAuthorityError) {
    // Encoded outside the lock, so subscribers never wait for PEM encoding.
    let encoded = try IdentitySecrets.encoding(svid)
    self.mutate { own, revision in
      own.adoptSVID(from: encoded, revision: revision)
      if let trust { own.setTrust(trust, revision: revision) }
    }
  }

  /// The trust this identity's issuances brought, served where the node has none installed.
  package var issuedTrust: ServedTrust? {
    self.state.withLock { $0.own.trust.trust }
  }

  /// Serves `trust` where the node has none installed, with the same SVID; pushed only where it
  /// changed.
  package func updateTrust(_ trust: ServedTrust) {
    self.mutate { own, revision in
      own.setTrust(trust, revision: revision)
    }
  }

  /// Stops serving the SVID, because it is expired and could not be renewed.
  package func withdrawSVID() {
    self.mutate { own, revision in
      guard own.svid != nil else { return }
      own.clearSVID(revision: revision)
    }
  }

  /// Serves exactly these JWT-SVIDs (`jwt-svid:<audience>`) from now on; pushed only where a
  /// token changed.
  package func updateJWTSVIDs(_ svids: [JWTAudience: JWTSVID]) {
    self.mutate { own, revision in
      own.setJWTSVIDs(svids, revision: revision)
    }
  }

  /// Calls `onChange` with the kinds that changed whenever the served secrets change, until the
  /// subscription is cancelled. `onChange` runs on the task that changed them and must not block.
  package func subscribe(_ onChange: @escaping @Sendable (SecretChanges) -> Void) -> Subscription {
    let id = self.state.withLock { state in
      let id = state.nextSubscriberID
      state.nextSubscriberID += 1
      state.subscribers[id] = onChange
      return id
    }
    return Subscription(cache: self, id: id, node: self.node, shared: self.node.subscribe(onChange))
  }

  /// One subscription to both parts: the identity's own secrets and the node's shared rows.
  package struct Subscription: Sendable {
    fileprivate weak var cache: SecretCache?
    fileprivate let id: Int
    fileprivate weak var node: NodeSecrets?
    fileprivate let shared: Int

    package func cancel() {
      _ = self.cache?.state.withLock { $0.subscribers.removeValue(forKey: self.id) }
      self.node?.unsubscribe(self.shared)
    }
  }

  /// A stream that yields whenever the served secrets change; finishes when the caller stops
  /// iterating.
  package func changes() -> AsyncStream<Void> {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let subscription = self.subscribe { _ in continuation.yield() }
    continuation.onTermination = { _ in subscription.cancel() }
    return stream
  }

  /// Waits until `predicate` holds for the served secrets, re-checking on every change.
  package func waitUntil(_ predicate: (ServedSecrets) -> Bool) async {
    let changes = self.changes()
    if predicate(self.current) { return }
    for await _ in changes where predicate(self.current) {
      return
    }
  }

  private func mutate(_ body: (inout IdentitySecrets, UInt64) -> Void) {
    typealias Signal = (subscribers: [@Sendable (SecretChanges) -> Void], changes: SecretChanges)
    let (subscribers, changes) = self.node.withRevision { revision -> (result: Signal, used: Bool) in
      self.state.withLock { state -> (result: Signal, used: Bool) in
        let before = state.own
        body(&state.own, revision)
        let changes = state.own.changes(since: before)
        guard !changes.isEmpty else { return (([], changes), false) }
        return ((Array(state.subscribers.values), changes), true)
      }
    }
    for subscriber in subscribers {
      subscriber(changes)
    }
  }
}
