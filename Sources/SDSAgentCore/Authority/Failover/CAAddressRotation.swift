import Foundation

/// Which of a CA's addresses a call tries, in what order. Calls take turns (round robin from a
/// per-node start, so a fleet spreads over the replicas); an address that failed rests for a
/// backoff, or for the CA's own retry hint if longer, and comes back after it. A plain value:
/// times are arguments, samples in `0...1` draw the jitter.
package struct CAAddressRotation: Sendable, Equatable {
  package let count: Int
  private var next: Int
  private var restingUntil: [Date?]
  private var backoffs: [Backoff]

  /// - Parameters:
  ///   - start: the first address in turn, e.g. `startIndex(for:count:)` of the node's name.
  ///   - backoff: how long a failed address rests, growing with each failure in a row.
  package init(count: Int, start: Int = 0, backoff: Backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))) {
    precondition(count > 0, "a CA has at least one address")
    self.count = count
    self.next = ((start % count) + count) % count
    self.restingUntil = Array(repeating: nil, count: count)
    self.backoffs = Array(repeating: backoff, count: count)
  }

  /// The addresses one call tries at `now`, in order: from the one whose turn it is, those not
  /// resting; then the resting ones, the soonest back first, so that a call never gives up
  /// without trying each. The next call starts one further.
  package mutating func order(now: Date) -> [Int] {
    let turn = (0..<self.count).map { (self.next + $0) % self.count }
    self.next = (self.next + 1) % self.count
    let ready = turn.filter { !self.isResting($0, at: now) }
    let resting = turn.filter { self.isResting($0, at: now) }
      .sorted { (self.restingUntil[$0] ?? now) < (self.restingUntil[$1] ?? now) }
    return ready + resting
  }

  package func isResting(_ index: Int, at now: Date) -> Bool {
    self.restingUntil[index].map { now < $0 } ?? false
  }

  /// When a resting address comes back, if it rests.
  package func restingUntil(_ index: Int) -> Date? {
    self.restingUntil[index]
  }

  package mutating func succeeded(_ index: Int) {
    self.restingUntil[index] = nil
    self.backoffs[index].reset()
  }

  /// The address failed at `now`: it rests for its next backoff (`sample` draws it), and never
  /// less than `hint`, the CA's own `grpc-retry-pushback-ms`.
  package mutating func failed(_ index: Int, now: Date, sample: Double, hint: Duration? = nil) {
    let backoff = self.backoffs[index].nextDelay(sample: sample)
    let rest = max(backoff, hint ?? .zero)
    self.restingUntil[index] = now.addingTimeInterval(rest.seconds)
  }

  /// A start that spreads nodes over `count` addresses: a stable hash (FNV-1a) of the node's name.
  package static func startIndex(for name: String, count: Int) -> Int {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in name.utf8 {
      hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
    }
    return Int(hash % UInt64(max(1, count)))
  }
}
