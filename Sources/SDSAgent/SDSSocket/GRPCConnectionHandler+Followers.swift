import NIOCore
import SDSAgentCore

/// A change of a caller's secrets reaches each connection once, not each of its streams: one
/// subscription per cache the connection's streams follow, and one event-loop task per change,
/// which hands it to every stream following that cache. A rotation then costs no task, closure
/// or subscription per stream, and an open stream holds none.
extension GRPCConnectionHandler {
  /// One cache the connection's streams follow.
  struct FollowedCache {
    let subscription: SecretCache.Subscription
    var streams: [ObjectIdentifier: GRPCStream]
  }

  /// `stream` gets `secretsChanged(_:)` on every change of `cache` until it unfollows.
  func follow(_ cache: SecretCache, by stream: GRPCStream, on eventLoop: any EventLoop) {
    let key = ObjectIdentifier(cache)
    if self.followed[key] != nil {
      self.followed[key]?.streams[ObjectIdentifier(stream)] = stream
      return
    }
    let connection = NIOLoopBound(self, eventLoop: eventLoop)
    let subscription = cache.subscribe { changes in
      eventLoop.execute { connection.value.secretsChanged(key, changes) }
    }
    self.followed[key] = FollowedCache(subscription: subscription, streams: [ObjectIdentifier(stream): stream])
  }

  /// `stream` no longer follows the cache `key` names; the last one out cancels the subscription.
  func unfollow(_ key: ObjectIdentifier, by stream: GRPCStream) {
    guard self.followed[key]?.streams.removeValue(forKey: ObjectIdentifier(stream)) != nil else { return }
    if self.followed[key]?.streams.isEmpty == true {
      self.followed.removeValue(forKey: key)?.subscription.cancel()
    }
  }

  /// The connection closed: nothing it followed is followed any more.
  func unfollowAll() {
    let followed = self.followed
    self.followed = [:]
    for cache in followed.values { cache.subscription.cancel() }
  }

  private func secretsChanged(_ key: ObjectIdentifier, _ changes: SecretChanges) {
    // A stream may end as it answers (and unfollow): the streams are those of the moment.
    guard let streams = self.followed[key]?.streams else { return }
    // One flush for every stream's push: the HTTP/2 handler then frames them in one pass.
    self.flushesDeferred = true
    for stream in streams.values { stream.secretsChanged(changes) }
    self.flushesDeferred = false
    if self.flushDeferred {
      self.flushDeferred = false
      self.flushStream()
    }
  }
}
