/// `struct ucred` (Glibc hides it): what `SO_PEERCRED` returns.
struct KernelPeerCredentials: Sendable {
  var pid: Int32 = 0
  var uid: UInt32 = 0
  var gid: UInt32 = 0
}
