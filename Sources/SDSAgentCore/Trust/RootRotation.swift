import Foundation

/// A staged rotation of the embedded CA's root, as a value: *prepared* (the new root is in the
/// bundle, the old one still signs), *switched* (the new root signs, the old one stays in the
/// bundle), then retired (the old root leaves the bundle and the rotation is over).
///
/// The deadlines are fixed when a phase begins and persisted with it, so an agent restarted in
/// any phase resumes at the same times.
package struct RootRotation: Sendable, Equatable, Codable {
  package enum Phase: String, Sendable, Codable {
    case prepared
    case switched
  }

  /// What is due.
  package enum Step: Sendable, Equatable {
    /// Sign with the new root; `forced` when streams that hold the bundle never acknowledged it.
    case switchRoot(forced: Bool)
    /// Drop the old root from the bundle: the rotation is complete.
    case retire
  }

  package private(set) var phase: Phase
  package let preparedAt: Date
  /// How long both roots are trusted before the switch.
  package let overlap: Duration
  /// The earliest switch: one overlap after the prepare.
  package let switchAt: Date
  /// The latest switch: streams that never acknowledge the new root hold it back at most this long.
  package let switchDeadline: Date
  package private(set) var switchedAt: Date?
  /// When no leaf signed by the old root can be valid any more.
  package private(set) var retireAt: Date?
  /// The root being replaced and the root replacing it (hex serials).
  package let previousRootSerial: String
  package let nextRootSerial: String

  package init(preparedAt: Date, overlap: Duration, previousRootSerial: String, nextRootSerial: String) {
    self.phase = .prepared
    self.preparedAt = preparedAt
    self.overlap = overlap
    self.switchAt = preparedAt.addingTimeInterval(overlap.seconds)
    self.switchDeadline = preparedAt.addingTimeInterval(2 * overlap.seconds)
    self.previousRootSerial = previousRootSerial
    self.nextRootSerial = nextRootSerial
  }

  /// The step due at `now`; `acknowledged` tells whether every open stream holding the bundle
  /// has acknowledged a version with the new root.
  package func due(now: Date, acknowledged: Bool) -> Step? {
    switch self.phase {
    case .prepared:
      guard now >= self.switchAt else { return nil }
      if acknowledged { return .switchRoot(forced: false) }
      return now >= self.switchDeadline ? .switchRoot(forced: true) : nil
    case .switched:
      guard let retireAt = self.retireAt, now >= retireAt else { return nil }
      return .retire
    }
  }

  /// When to look again. While the switch waits for acknowledgements, `nil`: an acknowledgement
  /// or `switchDeadline` ends the wait, and the caller watches for both.
  package func nextDeadline(now: Date, acknowledged: Bool) -> Date {
    switch self.phase {
    case .prepared:
      return now < self.switchAt || acknowledged ? self.switchAt : self.switchDeadline
    case .switched:
      return self.retireAt ?? now
    }
  }

  /// The new root signs from `now`; the old root is retired once every leaf it signed has
  /// expired: `lastOldLeafExpiry` is the latest `notAfter` among them.
  package mutating func switched(at now: Date, lastOldLeafExpiry: Date) {
    self.phase = .switched
    self.switchedAt = now
    self.retireAt = max(now, lastOldLeafExpiry)
  }

  // MARK: - Persistence

  private enum CodingKeys: String, CodingKey {
    case phase
    case preparedAt = "prepared_at"
    case overlapSeconds = "overlap_seconds"
    case switchAt = "switch_at"
    case switchDeadline = "switch_deadline"
    case switchedAt = "switched_at"
    case retireAt = "retire_at"
    case previousRootSerial = "previous_root_serial"
    case nextRootSerial = "next_root_serial"
  }

  package init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    self.phase = try container.decode(Phase.self, forKey: .phase)
    self.preparedAt = try container.decode(Date.self, forKey: .preparedAt)
    let overlap = try container.decode(Double.self, forKey: .overlapSeconds)
    guard overlap.isFinite, overlap > 0, overlap < 366 * 86400 else {
      throw DecodingError.dataCorruptedError(
        forKey: .overlapSeconds, in: container, debugDescription: "the overlap must be a positive number of seconds")
    }
    self.overlap = .milliseconds(Int64(overlap * 1000))
    self.switchAt = try container.decode(Date.self, forKey: .switchAt)
    self.switchDeadline = try container.decode(Date.self, forKey: .switchDeadline)
    self.switchedAt = try container.decodeIfPresent(Date.self, forKey: .switchedAt)
    self.retireAt = try container.decodeIfPresent(Date.self, forKey: .retireAt)
    self.previousRootSerial = try container.decode(String.self, forKey: .previousRootSerial)
    self.nextRootSerial = try container.decode(String.self, forKey: .nextRootSerial)
    if self.phase == .switched, self.switchedAt == nil || self.retireAt == nil {
      throw DecodingError.dataCorruptedError(
        forKey: .retireAt, in: container, debugDescription: "a switched rotation needs switched_at and retire_at")
    }
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(self.phase, forKey: .phase)
    try container.encode(self.preparedAt, forKey: .preparedAt)
    try container.encode(self.overlap.seconds, forKey: .overlapSeconds)
    try container.encode(self.switchAt, forKey: .switchAt)
    try container.encode(self.switchDeadline, forKey: .switchDeadline)
    try container.encodeIfPresent(self.switchedAt, forKey: .switchedAt)
    try container.encodeIfPresent(self.retireAt, forKey: .retireAt)
    try container.encode(self.previousRootSerial, forKey: .previousRootSerial)
    try container.encode(self.nextRootSerial, forKey: .nextRootSerial)
  }
}
