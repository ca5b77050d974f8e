/// What the kernel says about the process on the other end of a Unix socket (`SO_PEERCRED`),
/// and, when read, the executable it runs.
package struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
  package var pid: Int32
  package var uid: UInt32
  package var gid: UInt32
  /// The absolute path of the process's executable, if it was read and the process did not
  /// change while it was read.
  package var executable: String?

  package init(pid: Int32, uid: UInt32, gid: UInt32, executable: String? = nil) {
    self.pid = pid
    self.uid = uid
    self.gid = gid
    self.executable = executable
  }

  package var description: String {
    "pid=\(self.pid) uid=\(self.uid) gid=\(self.gid)" + (self.executable.map { " exe=\($0)" } ?? "")
  }

  /// The form the transport hands the credentials to the handler in: `pid=1;uid=2;gid=3`.
  package var carrierValue: String { "pid=\(self.pid);uid=\(self.uid);gid=\(self.gid)" }

  package init?(carrierValue: String) {
    var fields: [Substring: Substring] = [:]
    for field in carrierValue.split(separator: ";") {
      let parts = field.split(separator: "=", maxSplits: 1)
      guard parts.count == 2 else { return nil }
      fields[parts[0]] = parts[1]
    }
    guard let pid = fields["pid"].flatMap({ Int32($0) }), let uid = fields["uid"].flatMap({ UInt32($0) }),
      let gid = fields["gid"].flatMap({ UInt32($0) }), fields.count == 3
    else { return nil }
    self.init(pid: pid, uid: uid, gid: gid)
  }

  /// The metadata key the transport sets; any value a client sends under it is discarded first.
  package static let carrierKey = "sds-agent-peer-credentials"
}
