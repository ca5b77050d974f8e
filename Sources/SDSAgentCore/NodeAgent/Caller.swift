/// An identified caller: whose secrets it gets, and with which credential its certificates are
/// requested.
public struct Caller: Sendable, Equatable, CustomStringConvertible {
  public var identity: SPIFFEID
  public var credential: CACredential
  /// `false` for a forwarded token no one has verified yet: the CA must accept it before the
  /// caller is served anything.
  public var isVerified: Bool
  /// How the caller was identified, for logs: `uid=1001 gid=1001 pid=7`, `token`, ….
  public var evidence: String

  public init(identity: SPIFFEID, credential: CACredential, isVerified: Bool, evidence: String) {
    self.identity = identity
    self.credential = credential
    self.isVerified = isVerified
    self.evidence = evidence
  }

  public var description: String { "\(self.identity) (\(self.evidence))" }
}

/// Why a caller gets nothing: the stream ends with this status and message.
public struct CallerRefusal: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Code: String, Sendable {
    /// The caller's proof of identity is missing or invalid: UNAUTHENTICATED.
    case unauthenticated
    /// The caller is known but may not have what it asked for: PERMISSION_DENIED.
    case permissionDenied = "permission_denied"
    /// The caller exceeded its rate: RESOURCE_EXHAUSTED.
    case rateLimited = "rate_limited"
    /// Its certificate cannot be obtained now: UNAVAILABLE.
    case unavailable
  }

  public let code: Code
  public let message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { self.message }
}
