import Foundation
import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Binds the SDS Unix socket: replaces a stale socket file left by a crashed run, refuses to
/// take over a socket a live agent still serves, and sets the mode (and group) on purpose —
/// the default umask would leave it unusable for other users.
package struct UnixSocketListener: Sendable {
  package let path: String
  /// A listening descriptor; the gRPC transport takes ownership of it.
  package let descriptor: Int32

  package static func bind(path: String, mode: UInt32, group: gid_t? = nil) throws(AgentError) -> UnixSocketListener {
    let address = try UnixSocketAddress(path: path)
    try self.removeStaleSocket(at: address)
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
      do {
        try FileManager.default.createDirectory(
          atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
      } catch {
        throw AgentError(.socketPath, "cannot create the socket's directory \(parent): \(error.localizedDescription)")
      }
    }

    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw AgentError(.socketSetup, "socket() failed: \(Errno.current)") }
    // Bind with a umask that leaves no access for anyone, then open up exactly `mode`: the socket
    // is never reachable with wider permissions than configured.
    let previousMask = umask(0o777)
    let bound = address.bind(fd)
    umask(previousMask)
    guard bound == 0 else {
      let error = Errno.current
      close(fd)
      throw AgentError(.socketSetup, "cannot bind \(path): \(error)")
    }
    if let group, chown(path, uid_t.max, group) != 0 {
      let error = Errno.current
      close(fd)
      unlink(path)
      throw AgentError(.socketSetup, "cannot set group \(group) on \(path): \(error)")
    }
    guard chmod(path, mode_t(mode)) == 0 else {
      let error = Errno.current
      close(fd)
      unlink(path)
      throw AgentError(.socketSetup, "cannot set mode \(String(mode, radix: 8)) on \(path): \(error)")
    }
    guard listen(fd, Self.backlog) == 0 else {
      let error = Errno.current
      close(fd)
      unlink(path)
      throw AgentError(.socketSetup, "cannot listen on \(path): \(error)")
    }
    return UnixSocketListener(path: path, descriptor: fd)
  }

  /// Connections the kernel queues for `accept`; capped by `net.core.somaxconn`.
  package static let backlog: Int32 = 4096

  /// Sets the backlog of a socket the transport listens on back to `backlog`.
  ///
  /// SwiftNIO's `ServerSocketChannel(socket:)` calls `listen(fd, 128)` on a descriptor it is
  /// given, and grpc-swift-nio-transport offers no option to change that, so both our own
  /// socket and systemd's would otherwise queue at most 128 connections. `listen` on a listening
  /// socket only changes its backlog.
  static func restoreBacklog(of descriptor: Int32, logger: Logger) {
    var accepting: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting == 1 else {
      logger.warning("the SDS socket is not listening; its backlog stays as it is", metadata: ["fd": "\(descriptor)"])
      return
    }
    guard listen(descriptor, Self.backlog) == 0 else {
      logger.warning("cannot set the SDS socket's backlog", metadata: ["error": "\(Errno.current)"])
      return
    }
  }

  /// Removes the socket file, if it is still ours.
  package func removeSocketFile() {
    unlink(self.path)
  }

  private static func removeStaleSocket(at address: UnixSocketAddress) throws(AgentError) {
    let path = address.path
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    guard (info.st_mode & S_IFMT) == S_IFSOCK else {
      throw AgentError(.socketPath, "\(path) exists and is not a socket; remove it or choose another --socket")
    }
    let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard probe >= 0 else { throw AgentError(.socketSetup, "socket() failed: \(Errno.current)") }
    defer { close(probe) }
    if address.connect(probe) == 0 {
      throw AgentError(
        .socketInUse,
        "\(path) is in use by a running process (another sds-agent?); stop it or choose another --socket"
      )
    }
    let error = errno
    guard error == ECONNREFUSED else {
      throw AgentError(.socketSetup, "cannot probe the existing socket \(path): \(Errno(code: error))")
    }
    guard unlink(path) == 0 else {
      throw AgentError(.socketSetup, "cannot remove the stale socket \(path): \(Errno.current)")
    }
  }
}
