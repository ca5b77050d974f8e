/// Where `file-cert:` and `file-root:` names may point (`file-secret-dirs`) and, in node-agent
/// mode, who may have them (`file-secret-callers`). Decides on the names as written; the files'
/// real paths are checked against `confinement(of:)` again at every read.
package struct OnTheFlyFilePolicy: Sendable, Equatable {
  package var directories: [String]
  package var callers: [FileSecretCallers]
  /// Whether callers are checked: in node-agent mode, where callers have different identities.
  package var checksCallers: Bool

  package init(directories: [String] = [], callers: [FileSecretCallers] = [], checksCallers: Bool = false) {
    self.directories = directories
    self.callers = callers
    self.checksCallers = checksCallers
  }

  /// The secret `name` stands for, if `caller` may have it; else PERMISSION_DENIED naming the rule.
  package func admit(_ name: String, for caller: SPIFFEID) throws(SDSRequestError) -> OnTheFlyFileSecret {
    let secret = try OnTheFlyFileSecret(parsing: name, directories: self.directories)
    guard self.checksCallers else { return secret }
    for path in secret.paths {
      guard let rule = self.callersRule(of: path) else {
        throw .fileSecretRefused(
          name,
          "\(caller) may not have it: in node-agent mode file-cert: and file-root: names are served only to the "
            + "callers file-secret-callers names for their directory, and none names one for this path")
      }
      guard rule.callers.contains(caller) else {
        throw .fileSecretRefused(
          name,
          "\(caller) may not have it: file-secret-callers names other callers for \(BoundedText(rule.directory))")
      }
    }
    return secret
  }

  /// The directory `path` must stay in when it is read: the deepest `file-secret-callers`
  /// directory holding it (in node-agent mode), else the `file-secret-dirs` entry holding it.
  package func confinement(of path: String) -> [String] {
    if self.checksCallers, let rule = self.callersRule(of: path) { return [rule.directory] }
    return self.directories.filter { Self.contains($0, path) }
  }

  func callersRule(of path: String) -> FileSecretCallers? {
    self.callers.filter { Self.contains($0.directory, path) }.max { $0.directory.count < $1.directory.count }
  }

  /// Whether `path` lies under `directory`, as written.
  package static func contains(_ directory: String, _ path: String) -> Bool {
    path.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
  }
}
