import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// One line of the node agent's mapping: callers whose peer credentials match every selector
/// get `identity`. Written `uid=1001,gid=1001,exe=/usr/local/bin/envoy,spiffe-id=spiffe://…`.
/// A parsed rule's `exe` is the file's real path, because `/proc/<pid>/exe` names the file a
/// symlink (a virtualenv's `python`) points to.
package struct WorkloadRule: Sendable, Equatable, CustomStringConvertible {
  package let uid: UInt32?
  package let gid: UInt32?
  package let executable: String?
  package let identity: SPIFFEID

  package init(uid: UInt32? = nil, gid: UInt32? = nil, executable: String? = nil, identity: SPIFFEID) {
    self.uid = uid
    self.gid = gid
    self.executable = executable
    self.identity = identity
  }

  package static let syntax = "uid=N, gid=N and/or exe=/absolute/path, and spiffe-id=spiffe://…, comma-separated"

  package init(parsing text: String) throws(ConfigurationError) {
    var uid: UInt32?
    var gid: UInt32?
    var executable: String?
    var identity: SPIFFEID?
    for field in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !field.isEmpty {
      let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { throw ConfigurationError(key: "workload", value: text, allowed: Self.syntax) }
      switch parts[0] {
      case "uid":
        guard let value = UInt32(parts[1]) else {
          throw ConfigurationError(key: "workload", value: text, allowed: "uid as a number")
        }
        uid = value
      case "gid":
        guard let value = UInt32(parts[1]) else {
          throw ConfigurationError(key: "workload", value: text, allowed: "gid as a number")
        }
        gid = value
      case "exe":
        guard parts[1].hasPrefix("/") else {
          throw ConfigurationError(key: "workload", value: text, allowed: "exe as an absolute path")
        }
        guard let resolved = Self.realPath(parts[1]) else {
          throw ConfigurationError(
            key: "workload", value: text, allowed: "exe naming an existing file (\(parts[1]) does not exist)")
        }
        executable = resolved
      case "spiffe-id":
        do {
          identity = try SPIFFEID(parsing: parts[1])
        } catch {
          throw ConfigurationError(
            key: "workload", value: text, allowed: "a valid spiffe-id (\(error.reason))", cause: error)
        }
      default:
        throw ConfigurationError(key: "workload", value: text, allowed: Self.syntax)
      }
    }
    guard let identity, !identity.path.isEmpty else {
      throw ConfigurationError(key: "workload", value: text, allowed: "a spiffe-id with a path (\(Self.syntax))")
    }
    guard uid != nil || gid != nil || executable != nil else {
      throw ConfigurationError(key: "workload", value: text, allowed: "at least one of uid, gid or exe")
    }
    self.init(uid: uid, gid: gid, executable: executable, identity: identity)
  }

  static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  package var description: String {
    var fields: [String] = []
    if let uid { fields.append("uid=\(uid)") }
    if let gid { fields.append("gid=\(gid)") }
    if let executable { fields.append("exe=\(executable)") }
    fields.append("spiffe-id=\(self.identity)")
    return fields.joined(separator: ",")
  }

  package func matches(_ peer: PeerCredentials) -> Bool {
    if let uid, uid != peer.uid { return false }
    if let gid, gid != peer.gid { return false }
    if let executable, executable != peer.executable { return false }
    return true
  }
}
