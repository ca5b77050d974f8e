import NIOCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#else
  #error("sds-agent builds on Linux only (Glibc or Musl): it relies on SO_PEERCRED, /proc and systemd")
#endif

/// The address of a Unix socket, valid by construction: a filesystem path short enough for
/// `sun_path`, or a name in Linux's abstract namespace (systemd writes those as `@name`).
package struct UnixSocketAddress: Sendable, CustomStringConvertible {
  /// The path as written, `@name` for an abstract socket.
  package let path: String
  /// NIO's address for a filesystem path; nil for an abstract name, which NIO cannot express.
  let fileAddress: SocketAddress?
  private let address: SocketAddress
  /// How many bytes of the `sockaddr_un` name the socket: all of them for a path, only the
  /// family, the leading NUL and the name for an abstract socket (there, trailing NULs would be
  /// part of the name).
  private let length: socklen_t

  /// A filesystem path; NIO validates its length.
  package init(path: String) throws(AgentError) {
    do {
      let address = try SocketAddress(unixDomainSocketPath: path)
      self.init(path: path, address: address, length: socklen_t(MemoryLayout<sockaddr_un>.size), isFile: true)
    } catch {
      throw AgentError(
        .socketPath,
        "socket path \(path) is \(path.utf8.count) bytes; Unix socket paths must be at most \(Self.maximumPathBytes) bytes, choose a shorter one"
      )
    }
  }

  /// systemd's notation for `$NOTIFY_SOCKET`: `@name` for an abstract socket, else a path.
  package init(systemdNotation text: String) throws(AgentError) {
    guard text.hasPrefix("@") else {
      try self.init(path: text)
      return
    }
    let name = [0] + Array(text.utf8.dropFirst())
    var raw = sockaddr_un()
    raw.sun_family = sa_family_t(AF_UNIX)
    guard name.count <= MemoryLayout.size(ofValue: raw.sun_path) else {
      throw AgentError(.socketPath, "abstract socket name \(text) is too long for sun_path")
    }
    withUnsafeMutableBytes(of: &raw.sun_path) { $0.copyBytes(from: name) }
    let length = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count
    self.init(path: text, address: SocketAddress(raw), length: socklen_t(length), isFile: false)
  }

  private init(path: String, address: SocketAddress, length: socklen_t, isFile: Bool) {
    self.path = path
    self.address = address
    self.length = length
    self.fileAddress = isFile ? address : nil
  }

  /// The address a descriptor is bound to; nil if it is not a Unix socket.
  package init?(boundTo descriptor: Int32) {
    var raw = sockaddr_un()
    var length = socklen_t(MemoryLayout<sockaddr_un>.size)
    let named = withUnsafeMutablePointer(to: &raw) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    guard named == 0, raw.sun_family == sa_family_t(AF_UNIX) else { return nil }
    let nameLength = Int(length) - MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
    let (path, isFile) = withUnsafeBytes(of: &raw.sun_path) { bytes in
      if nameLength > 0, bytes[0] == 0 {
        return ("@" + String(decoding: bytes[1..<nameLength], as: UTF8.self), false)
      }
      return (String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self), true)
    }
    self.init(path: path, address: SocketAddress(raw), length: length, isFile: isFile)
  }

  /// The most bytes NIO accepts in a path (fewer than Linux's `sun_path` holds, so that every
  /// path the agent binds can also be dialled by its own gRPC client).
  package static let maximumPathBytes = 103

  /// `bind(2)`; the result and `errno` as the call left them.
  package func bind(_ descriptor: Int32) -> Int32 {
    self.withSockaddr { systemBind(descriptor, $0, $1) }
  }

  /// `connect(2)`; the result and `errno` as the call left them.
  package func connect(_ descriptor: Int32) -> Int32 {
    self.withSockaddr { systemConnect(descriptor, $0, $1) }
  }

  /// `sendto(2)` of one datagram; the result and `errno` as the call left them.
  package func send(_ bytes: [UInt8], from descriptor: Int32) -> Int {
    self.withSockaddr { address, length in
      bytes.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, 0, address, length) }
    }
  }

  private func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
    self.address.withSockAddr { pointer, _ in body(pointer, self.length) }
  }

  package var description: String { self.path }
}

// Outside the type, where the names reach the C functions rather than the methods above.
private func systemBind(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
  bind(descriptor, address, length)
}

private func systemConnect(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
  connect(descriptor, address, length)
}
