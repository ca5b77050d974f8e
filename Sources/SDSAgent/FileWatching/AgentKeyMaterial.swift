import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The agent's own key material: the state directory (the generated CA's key, root rotation's
/// keys) and the operator's CA key. A secret served from files is never one of them: a secret
/// directory holding one is refused when the configuration is loaded, and each file read is
/// refused when its real path lies in the state directory or it is one of these files by
/// device and inode (a hard link, a bind mount).
package struct AgentKeyMaterial: Sendable, Equatable {
  package let stateDirectory: String
  /// The operator's CA key file (`ca-key`), if the CA comes from files.
  package let caKey: String?

  package init(stateDirectory: String, caKey: String?) {
    self.stateDirectory = stateDirectory
    self.caKey = caKey
  }

  /// Refuses a `file-secret-dirs` entry that holds the state directory or the CA key: a
  /// `file-cert:` name under it would read the agent's key by name.
  package func refuse(secretDirectories: [String]) throws(ConfigurationError) {
    let state = Self.resolved(self.stateDirectory)
    let key = self.caKey.map(Self.resolved)
    for directory in secretDirectories {
      let real = Self.resolved(directory)
      if Self.holds(real, state) || Self.holds(state, real) {
        throw ConfigurationError(
          key: "file-secret-dirs", value: directory,
          allowed: "a directory that neither holds nor lies in the agent's state directory (state-dir \(state)): "
            + "file-cert: names there could read the agent's CA key; mount the secrets elsewhere")
      }
      if let key, Self.holds(real, key) {
        throw ConfigurationError(
          key: "file-secret-dirs", value: directory,
          allowed: "a directory that does not hold the operator CA key (ca-key \(key)): file-cert: names "
            + "under it could read it; keep the CA key elsewhere")
      }
    }
  }

  /// What a read checks each file against, taken once per check of the files.
  func snapshot() -> Snapshot {
    let state = Self.resolved(self.stateDirectory)
    var files: Set<FileIdentity> = []
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []
    for entry in entries.prefix(Self.maximumStateEntries) {
      if let identity = FileIdentity(path: state + "/" + entry) { files.insert(identity) }
    }
    if let key = self.caKey, let identity = FileIdentity(path: key) { files.insert(identity) }
    return Snapshot(stateDirectory: state, files: files)
  }

  struct Snapshot: Sendable {
    let stateDirectory: String
    let files: Set<FileIdentity>

    /// Whether an opened file at `realPath` with `identity` is the agent's key material.
    func holds(realPath: String, identity: FileIdentity) -> Bool {
      AgentKeyMaterial.holds(self.stateDirectory, realPath) || self.files.contains(identity)
    }
  }

  /// A file by device and inode.
  struct FileIdentity: Sendable, Hashable {
    let device: UInt64
    let inode: UInt64

    init(_ info: stat) {
      self.device = UInt64(info.st_dev)
      self.inode = UInt64(info.st_ino)
    }

    init?(path: String) {
      var info = stat()
      guard stat(path, &info) == 0 else { return nil }
      self.init(info)
    }
  }

  /// The state directory holds a handful of files; more are not looked at.
  static let maximumStateEntries = 256

  /// `path`'s real path, or, when it does not exist yet, the path made absolute and normalized.
  static func resolved(_ path: String) -> String {
    if let real = realpath(path, nil) {
      defer { free(real) }
      return String(cString: real)
    }
    return (path as NSString).standardizingPath
  }

  /// Whether `directory` is `path` or one of its parents.
  static func holds(_ directory: String, _ path: String) -> Bool {
    path == directory || path.hasPrefix(directory == "/" ? "/" : directory + "/")
  }
}
