/// The `file-cert:` and `file-root:` names being followed, and who asked for them: one row per
/// name, shared by every caller that holds it. Bounded per caller, so that one caller cannot
/// stop another's names from being served: a caller may hold `maximumPerCaller` names whose
/// files exist (or are not read yet) and as many whose files do not exist. A name no stream
/// holds is kept `idleTimeout` for the callers that last held it (`FetchSecrets` asks again),
/// then dropped. A plain value: the watcher owns it and does the reading.
package struct OnTheFlyFileTable: Sendable {
  package enum State: Sendable, Equatable {
    case unread
    /// The files exist, whether or not they make a secret that can be served.
    case present
    /// A file does not exist (yet); looked for again at every check.
    case missing
  }

  package struct Row: Sendable {
    package let secret: OnTheFlyFileSecret
    package internal(set) var state: State = .unread
    /// The streams holding the name, with their callers.
    var holders: [UInt64: SPIFFEID] = [:]
    /// Callers whose last hold ended (or whose `FetchSecrets` asked), and when.
    var released: [SPIFFEID: ContinuousClock.Instant] = [:]

    func isHeld(by caller: SPIFFEID, now: ContinuousClock.Instant, idle: Duration) -> Bool {
      self.holders.values.contains(caller) || self.released[caller].map { now - $0 < idle } == true
    }
  }

  package private(set) var rows: [String: Row] = [:]
  package let maximumPerCaller: Int
  package let idleTimeout: Duration

  package static let defaultMaximumPerCaller = 256
  package static let defaultIdleTimeout = Duration.seconds(60)

  package init(maximumPerCaller: Int = Self.defaultMaximumPerCaller, idleTimeout: Duration = Self.defaultIdleTimeout) {
    self.maximumPerCaller = maximumPerCaller
    self.idleTimeout = idleTimeout
  }

  /// The stream `holder` of `caller` now holds exactly `secrets` (its other names are released);
  /// without a holder (`FetchSecrets`) the names are only attributed to `caller` for
  /// `idleTimeout`. Returns the names refused because `caller` holds too many already.
  package mutating func hold(
    _ secrets: [OnTheFlyFileSecret], by holder: UInt64?, caller: SPIFFEID, now: ContinuousClock.Instant
  ) -> [String] {
    let wanted = Set(secrets.map(\.name))
    if let holder {
      for name in Array(self.rows.keys) where self.rows[name]?.holders[holder] != nil && !wanted.contains(name) {
        self.rows[name]?.holders[holder] = nil
        self.rows[name]?.released[caller] = now
      }
    }
    var (present, missing) = self.counts(of: caller, now: now)
    var refused: [String] = []
    for secret in secrets {
      let row = self.rows[secret.name]
      if row?.isHeld(by: caller, now: now, idle: self.idleTimeout) != true {
        if row?.state == .missing {
          guard missing < self.maximumPerCaller else {
            refused.append(secret.name)
            continue
          }
          missing += 1
        } else {
          guard present < self.maximumPerCaller else {
            refused.append(secret.name)
            continue
          }
          present += 1
        }
      }
      var updated = row ?? Row(secret: secret)
      if let holder { updated.holders[holder] = caller } else { updated.released[caller] = now }
      self.rows[secret.name] = updated
    }
    return refused
  }

  /// The stream `holder` ended: its names stay attributed to its caller for `idleTimeout`.
  package mutating func release(_ holder: UInt64, now: ContinuousClock.Instant) {
    for name in Array(self.rows.keys) {
      if let caller = self.rows[name]?.holders.removeValue(forKey: holder) {
        self.rows[name]?.released[caller] = now
      }
    }
  }

  /// What a read found. A name found missing is dropped for each caller that already holds
  /// `maximumPerCaller` missing names, and from the table when nobody holds it any more.
  package mutating func record(_ name: String, _ state: State, now: ContinuousClock.Instant) {
    guard let previous = self.rows[name]?.state, previous != state else { return }
    self.rows[name]?.state = state
    guard state == .missing, let row = self.rows[name] else { return }
    let callers = Set(row.holders.values).union(row.released.keys)
    for caller in callers where self.counts(of: caller, now: now).missing > self.maximumPerCaller {
      self.rows[name]?.holders = row.holders.filter { $0.value != caller }
      self.rows[name]?.released[caller] = nil
    }
    if let row = self.rows[name], row.holders.isEmpty, row.released.isEmpty { self.rows[name] = nil }
  }

  /// Drops the names nobody has held for `idleTimeout`; returns them.
  package mutating func expire(now: ContinuousClock.Instant) -> [String] {
    var dropped: [String] = []
    for name in Array(self.rows.keys) {
      guard var row = self.rows[name] else { continue }
      row.released = row.released.filter { now - $0.value < self.idleTimeout }
      if row.holders.isEmpty && row.released.isEmpty {
        self.rows[name] = nil
        dropped.append(name)
      } else {
        self.rows[name] = row
      }
    }
    return dropped
  }

  /// How many names `caller` holds whose files exist (or are not read yet), and whose do not.
  package func counts(of caller: SPIFFEID, now: ContinuousClock.Instant) -> (present: Int, missing: Int) {
    var counts = (present: 0, missing: 0)
    for row in self.rows.values where row.isHeld(by: caller, now: now, idle: self.idleTimeout) {
      if row.state == .missing { counts.missing += 1 } else { counts.present += 1 }
    }
    return counts
  }
}
