import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// systemd socket activation: the listening socket systemd passes as descriptor 3 when
/// `LISTEN_PID` is this process and `LISTEN_FDS` ≥ 1.
package enum SocketActivation {
  package static let firstDescriptor: Int32 = 3

  /// The passed Unix stream socket, if this process was socket-activated.
  package static func listeningDescriptor(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(AgentError) -> Int32? {
    guard let pidText = environment["LISTEN_PID"], let count = environment["LISTEN_FDS"].flatMap(Int.init) else {
      return nil
    }
    guard Int32(pidText) == getpid() else { return nil }
    guard count >= 1 else { return nil }
    let fd = self.firstDescriptor
    var type: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else {
      throw AgentError(.socketSetup, "socket activation passed descriptor \(fd), which is not a stream socket")
    }
    guard UnixSocketAddress(boundTo: fd) != nil else {
      throw AgentError(
        .socketSetup, "socket activation passed descriptor \(fd), which is not a Unix socket; use ListenStream=/path")
    }
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    return fd
  }

  /// The path the passed socket is bound to.
  package static func path(of fd: Int32) -> String? {
    UnixSocketAddress(boundTo: fd)?.path
  }
}
