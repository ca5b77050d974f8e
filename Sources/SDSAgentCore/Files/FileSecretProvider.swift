/// Serves secrets read from files: `FileSecretWatcher`.
public protocol FileSecretProvider: Sendable {
  /// The names `caller` may have, those configured for other callers only, and where
  /// `file-cert:` and `file-root:` names may point.
  func access(for caller: SPIFFEID) -> FileSecretAccess
  /// Starts serving an on-the-fly name (read now, then followed like the others).
  func require(_ secret: OnTheFlyFileSecret)
}

public struct FileSecretAccess: Sendable {
  public var allowed: Set<String>
  public var withheld: Set<String>
  public var directories: [String]

  public init(allowed: Set<String> = [], withheld: Set<String> = [], directories: [String] = []) {
    self.allowed = allowed
    self.withheld = withheld
    self.directories = directories
  }
}
