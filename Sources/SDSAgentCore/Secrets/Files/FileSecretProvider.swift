/// Serves secrets read from files: `FileSecretWatcher`.
package protocol FileSecretProvider: Sendable {
  /// The names `caller` may have, those configured for other callers only, and the rule for
  /// `file-cert:` and `file-root:` names.
  func access(for caller: SPIFFEID) -> FileSecretAccess
  /// The stream `holder` of `caller` now follows exactly these on-the-fly names (nil: a
  /// `FetchSecrets`, which holds nothing). New names are read off the caller's thread and
  /// served when read. Returns the names refused because the caller holds too many.
  func hold(_ secrets: [OnTheFlyFileSecret], by holder: UInt64?, caller: SPIFFEID) -> [String]
  /// The stream `holder` ended.
  func release(_ holder: UInt64)
  /// Reads now the names among `secrets` not read yet, for an answer that cannot wait for the
  /// watcher (`FetchSecrets`), on the caller's task (never an event loop's thread); returns why
  /// each one that cannot be served cannot.
  func readNow(_ secrets: [OnTheFlyFileSecret]) async -> [String: FileSecretError]
}

package struct FileSecretAccess: Sendable {
  package var allowed: Set<String>
  package var withheld: Set<String>
  package var onTheFly: OnTheFlyFilePolicy

  package init(allowed: Set<String> = [], withheld: Set<String> = [], onTheFly: OnTheFlyFilePolicy = .init()) {
    self.allowed = allowed
    self.withheld = withheld
    self.onTheFly = onTheFly
  }
}
