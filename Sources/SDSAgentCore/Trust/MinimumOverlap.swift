import Foundation

/// The shortest overlap a root rotation may have, and why: whoever trusts the CA must have
/// learnt the new root before it signs.
package struct MinimumOverlap: Sendable, Equatable {
  package let duration: Duration
  /// What the minimum is, in the operator's words (a setting: "--max-ttl").
  package let name: String
  /// Why a shorter overlap is refused, as a clause ("because …").
  package let reason: String

  package init(_ duration: Duration, name: String, because reason: String) {
    self.duration = duration
    self.name = name
    self.reason = reason
  }

  /// A CA that cannot see its clients acknowledge the new root (`ca serve`): a node agent learns
  /// it only when it renews, at about half its certificate's lifetime, or when its `--ca-root`
  /// file changes; so the old root keeps signing for at least the longest lifetime granted.
  package static func renewal(maximumTTL: Duration) -> Self {
    Self(
      maximumTTL, name: "--max-ttl",
      because: "a CA cannot see its agents acknowledge the new root, and an agent learns the new root only when "
        + "it renews its certificate (at about half its lifetime) or when its --ca-root file changes")
  }

  /// What is allowed, for a `ConfigurationError`.
  package var requirement: String {
    "at least \(self.name) (\(DurationParser.format(self.duration))), because \(self.reason)"
  }

  /// Why `overlap` is refused, or `nil` if it is long enough.
  package func refusal(of overlap: Duration) -> String? {
    guard overlap < self.duration else { return nil }
    return "the overlap \(DurationParser.format(overlap)) is too short: it must be \(self.requirement)"
  }
}
