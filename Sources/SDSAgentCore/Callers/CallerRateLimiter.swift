import Foundation
import Synchronization

/// Per-identity token buckets for new streams and for the certificates a caller's streams cause
/// to be issued. A bucket that has refilled is the same as a new one, so idle buckets are
/// dropped once there are many.
package final class CallerRateLimiter: Sendable {
  package enum Kind: Sendable {
    case stream
    case certificate
  }

  private struct Key: Hashable {
    let identity: SPIFFEID
    let isStream: Bool
  }

  private struct State {
    var limits: CallerLimits
    var buckets: [Key: TokenBucket] = [:]
  }

  /// Buckets kept before the full ones are dropped.
  static let pruneThreshold = 4096

  private let state: Mutex<State>

  package init(limits: CallerLimits) {
    self.state = Mutex(State(limits: limits))
  }

  package var limits: CallerLimits { self.state.withLock { $0.limits } }

  /// Takes one `kind` token for `identity`; `nil` if it may go ahead, else the rate it exceeded
  /// and how long until it may.
  package func take(_ kind: Kind, for identity: SPIFFEID, now: Date) -> (rate: Rate, retryIn: Duration)? {
    self.state.withLock { state in
      let rate = kind == .stream ? state.limits.streamRate : state.limits.certificateRate
      let key = Key(identity: identity, isStream: kind == .stream)
      if state.buckets[key] == nil, state.buckets.count >= Self.pruneThreshold {
        state.buckets = state.buckets.filter { !$0.value.isFull(at: now) }
      }
      var bucket = state.buckets[key] ?? TokenBucket(rate: rate, now: now)
      defer { state.buckets[key] = bucket }
      return bucket.take(now: now).map { (rate, $0) }
    }
  }

  /// New limits; when they change every caller starts again with a full bucket.
  package func update(_ limits: CallerLimits) {
    self.state.withLock { state in
      guard state.limits != limits else { return }
      state.limits = limits
      state.buckets = [:]
    }
  }
}
