import Foundation
import Logging
import Synchronization

/// The own trust domain's JWT signing keys, rotating with the root: at the root's prepare a new
/// key is made, kept and published before it signs anything; at the switch it signs; the key it
/// replaced stays published until the last token it signed has expired (one `ttl` after the
/// switch), on the rotation supervisor's timer. Each change is published to the node's JWT
/// bundles row (`NodeSecrets`), which pushes every `FetchJWTBundles` stream.
package final class JWTKeyRing: RootRotationFollower, Sendable {
  private let keys: Mutex<JWTSigningKeys>
  private let store: (any JWTSigningKeyStore)?
  package let trustDomain: TrustDomainName
  /// The JWT-SVIDs' lifetime: how long a key that no longer signs stays published.
  package let ttl: Duration
  private let node: NodeSecrets?
  private let logger: Logger

  /// - Parameters:
  ///   - store: keeps each phase; without one (operator CA files, tests) keys live in memory.
  ///   - node: where the own JWT bundle is published, at once and on every change.
  package init(
    _ keys: JWTSigningKeys, trustDomain: TrustDomainName, ttl: Duration, store: (any JWTSigningKeyStore)? = nil,
    publishingTo node: NodeSecrets? = nil, logger: Logger = Logger(label: "sds-agent.jwt")
  ) {
    self.keys = Mutex(keys)
    self.store = store
    self.trustDomain = trustDomain
    self.ttl = ttl
    self.node = node
    self.logger = logger
    self.update { _ in }
  }

  /// The keys as they are now.
  package var current: JWTSigningKeys { self.keys.withLock { $0 } }

  /// The own trust domain's JWT bundle: every key published now.
  package var bundle: JWTBundle { Self.bundle(of: self.current, in: self.trustDomain) }

  /// Runs `body` with the key that signs now; a switch waits for it, so no token of the old key
  /// is signed after the switch (its retirement counts on that).
  package func withSigningKey<Result: Sendable, Failure: Error>(
    _ body: (JWTSigningKey) throws(Failure) -> Result
  ) throws(Failure) -> Result {
    try self.keys.withLock { keys throws(Failure) in try body(keys.signing) }
  }

  // MARK: - RootRotationFollower

  package func rootPrepared(at now: Date) {
    guard self.current.next == nil else { return }
    let next: JWTSigningKey
    do {
      next = try self.store.map { try $0.makeNext() } ?? JWTSigningKey()
    } catch {
      self.logger.error(
        "JWT signing key rotation: could not keep a new key; the current key keeps signing after the switch",
        metadata: ["error": "\(error)"])
      return
    }
    self.update { $0.prepare(next) }
    self.logger.notice(
      "JWT signing key rotation: prepared a new key; it is in the JWT bundle from now on, and signs from the switch",
      metadata: ["kid": "\(next.kid)"])
  }

  package func rootSwitched(at now: Date) {
    // Recorded before it takes effect; only the supervisor's task changes the keys after a prepare.
    var keys = self.current
    guard keys.switchToNext(at: now, ttl: self.ttl) else { return }
    do {
      try self.store?.switched(keys)
    } catch {
      // Made again from the root's record at restart.
      self.logger.error("JWT signing key rotation: could not record the switch", metadata: ["error": "\(error)"])
    }
    self.update { $0.switchToNext(at: now, ttl: self.ttl) }
    self.logger.notice(
      "JWT signing key rotation: the new key signs from now on; the old one stays in the JWT bundle until its last token expires",
      metadata: [
        "kid": "\(keys.signing.kid)", "retire_at": "\(keys.nextRetirement.map { $0.formatted(.iso8601) } ?? "-")",
      ])
  }

  package var nextDeadline: Date? { self.current.nextRetirement }

  package func performDueSteps(at now: Date) {
    var keys = self.current
    let retired = keys.retire(now: now)
    guard !retired.isEmpty else { return }
    do {
      try self.store?.retired(keys)
    } catch {
      // The record keeps the key until a restart drops it, its retirement being past.
      self.logger.error("JWT signing key rotation: could not record a retirement", metadata: ["error": "\(error)"])
    }
    self.logger.notice(
      "JWT signing key rotation: retired a key whose last token has expired",
      metadata: ["kid": "\(retired.map(\.key.kid).joined(separator: ","))"])
    self.update { _ = $0.retire(now: now) }
  }

  /// Takes the keys another writer decided at `now` (a replica of `ca serve` sharing its
  /// datastore) and publishes them. A key this ring signed or kept stays published until the
  /// last token it signed has expired, even if the other writer retired it earlier.
  package func replace(_ keys: JWTSigningKeys, at now: Date) {
    let (before, after) = self.update { held in
      var retiring = keys.retiring
      let kept = keys.published.map(\.kid)
      if !kept.contains(held.signing.kid) {
        retiring.append(
          .init(
            key: held.signing.publicKey, retireAt: now.addingTimeInterval(self.ttl.seconds),
            replacedBy: keys.signing.kid))
      }
      for old in held.retiring {
        if let index = retiring.firstIndex(where: { $0.key.kid == old.key.kid }) {
          if old.retireAt > retiring[index].retireAt { retiring[index] = old }
        } else if !kept.contains(old.key.kid), old.retireAt > now {
          retiring.append(old)
        }
      }
      let before = held.published.map(\.kid)
      held = JWTSigningKeys(signing: keys.signing, next: keys.next, retiring: retiring)
      return before
    }
    guard before != after.published.map(\.kid) else { return }
    self.logger.notice(
      "JWT signing key rotation: followed the keys of the shared CA",
      metadata: [
        "kid": "\(after.signing.kid)", "next": "\(after.next?.kid ?? "-")",
        "retiring": "\(after.retiring.map(\.key.kid).joined(separator: ","))",
      ])
  }

  // MARK: - Publishing

  private static func bundle(of keys: JWTSigningKeys, in domain: TrustDomainName) -> JWTBundle {
    JWTBundle(trustDomain: domain, keys: keys.published)
  }

  /// Changes the keys and publishes them under the same lock, so that bundles are published in
  /// the order the keys changed.
  @discardableResult
  private func update<Result: Sendable>(_ change: (inout JWTSigningKeys) -> Result) -> (Result, JWTSigningKeys) {
    self.keys.withLock { keys in
      let result = change(&keys)
      let bundle = Self.bundle(of: keys, in: self.trustDomain)
      self.node?.updateJWTBundles { $0.own = bundle }
      return (result, keys)
    }
  }
}
