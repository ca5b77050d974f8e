import Foundation

/// What rotates with the root, in step with its phases and on the rotation's timer: the JWT
/// signing keys. Each step is called after the root's own step is recorded; a follower keeps
/// its own record and resumes from the root's phase at restart.
package protocol RootRotationFollower: Sendable {
  /// The root rotation was prepared at `now`.
  func rootPrepared(at now: Date)
  /// The new root signs from `now`.
  func rootSwitched(at now: Date)
  /// When the follower has a step of its own due, if it has one; it may outlive the rotation.
  var nextDeadline: Date? { get }
  /// Takes the follower's own steps due at `now`.
  func performDueSteps(at now: Date)
}
