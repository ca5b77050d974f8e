/// Values made once per revision of what they are made from, by key: a rotation pushes the same
/// bytes to every stream, so the first stream makes them and the others copy them. Bounded: past
/// `limit` keys (the keys are bounded per request, not per identity) it starts over.
struct RevisionMemo<Key: Hashable, Value> {
  private var kept: [Key: (revision: UInt64, value: Value)] = [:]
  let limit: Int

  init(limit: Int) {
    self.limit = limit
  }

  /// The value kept for `key` at exactly `revision`.
  func value(for key: Key, at revision: UInt64) -> Value? {
    guard let kept = self.kept[key], kept.revision == revision else { return nil }
    return kept.value
  }

  /// Keeps `value` for `key` at `revision`, unless a newer one is kept already.
  mutating func keep(_ value: Value, for key: Key, at revision: UInt64) {
    if self.kept.count >= self.limit, self.kept[key] == nil { self.kept.removeAll(keepingCapacity: true) }
    if (self.kept[key]?.revision ?? 0) <= revision { self.kept[key] = (revision, value) }
  }

  var count: Int { self.kept.count }
}
