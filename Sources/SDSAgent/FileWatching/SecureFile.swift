import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// File operations with explicit permissions, for the state directory and key files.
enum SecureFile {
  /// Creates `path` (and missing parents) as a directory only its owner can use, or tightens an
  /// existing one to 0700.
  static func ensurePrivateDirectory(_ path: String) throws(AgentError) {
    var info = stat()
    if stat(path, &info) == 0 {
      guard (info.st_mode & S_IFMT) == S_IFDIR else {
        throw AgentError(.stateDirectory, "state directory \(path) exists and is not a directory")
      }
      if info.st_mode & 0o077 != 0, chmod(path, 0o700) != 0 {
        throw AgentError(.stateDirectory, "cannot restrict state directory \(path) to mode 0700: \(Errno.current)")
      }
      return
    }
    do {
      try FileManager.default.createDirectory(
        atPath: path,
        withIntermediateDirectories: true,
        attributes: [.posixPermissions: 0o700]
      )
    } catch {
      throw AgentError(.stateDirectory, "cannot create state directory \(path): \(error.localizedDescription)")
    }
    guard chmod(path, 0o700) == 0 else {
      throw AgentError(.stateDirectory, "cannot set mode 0700 on state directory \(path): \(Errno.current)")
    }
  }

  /// Writes `contents` to `path` atomically with `mode`; the file never exists with a wider mode.
  static func write(_ contents: String, to path: String, mode: mode_t) throws(AgentError) {
    let temporary = path + ".tmp.\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else {
      throw AgentError(.stateDirectory, "cannot create \(temporary): \(Errno.current)")
    }
    do {
      try self.writeAll(Array(contents.utf8), to: fd, path: temporary)
    } catch {
      close(fd)
      unlink(temporary)
      throw error
    }
    fchmod(fd, mode)
    fsync(fd)
    close(fd)
    guard rename(temporary, path) == 0 else {
      let error = Errno.current
      unlink(temporary)
      throw AgentError(.stateDirectory, "cannot rename \(temporary) to \(path): \(error)")
    }
  }

  /// Writes every byte to `fd`, however many calls it takes.
  static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(AgentError) {
    var written = 0
    while written < bytes.count {
      let result = bytes.withUnsafeBytes { buffer in
        #if canImport(Glibc)
          Glibc.write(fd, buffer.baseAddress! + written, bytes.count - written)
        #elseif canImport(Musl)
          Musl.write(fd, buffer.baseAddress! + written, bytes.count - written)
        #endif
      }
      guard result > 0 else { throw AgentError(.stateDirectory, "cannot write \(path): \(Errno.current)") }
      written += result
    }
  }

  /// Reads a file, refusing a private-key file that others can read.
  static func read(_ path: String, isPrivate: Bool, what: String) throws(AgentError) -> String {
    var info = stat()
    guard stat(path, &info) == 0 else {
      throw AgentError(.caFiles, "cannot read \(what) \(path): \(Errno.current)")
    }
    if isPrivate, info.st_mode & 0o077 != 0 {
      throw AgentError(
        .caFiles,
        "\(what) \(path) is accessible by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)"
      )
    }
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw AgentError(.caFiles, "cannot read \(what) \(path)")
    }
    return text
  }

  static func exists(_ path: String) -> Bool {
    access(path, F_OK) == 0
  }
}

/// The current `errno`, printable.
struct Errno: CustomStringConvertible {
  let code: Int32

  static var current: Errno { Errno(code: errno) }

  var description: String { String(cString: strerror(self.code)) + " (errno \(self.code))" }
}
