/// Where a root rotation's phases are made durable, so that an agent restarted in any phase
/// resumes it. Each method returns only once the phase is on disk.
package protocol RootRotationStore: Sendable {
  /// Keeps the prepared root (its key private) and the rotation that will switch to it.
  func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError)
  /// The prepared root signs from now on; the old root stays trusted until `rotation.retireAt`.
  func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError)
  /// The rotation is over: the old root is forgotten.
  func retired() throws(RootRotationError)
}

/// Why a root rotation cannot start or go on.
package struct RootRotationError: AgentFailure {
  package enum Code: String, Sendable {
    /// A rotation is already running.
    case inProgress = "in_progress"
    /// This CA's roots are not the agent's to rotate (operator files, a remote CA).
    case notRotatable = "not_rotatable"
    /// The rotation's state could not be written or read.
    case storage
    /// A new root could not be made.
    case generation
    /// The overlap asked for is shorter than the host allows (`MinimumOverlap`).
    case overlapTooShort = "overlap_too_short"
  }

  package let code: Code
  package let message: String
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package var description: String { self.failureText }
}
