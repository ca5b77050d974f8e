import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Reads a session ticket seed: a regular file nobody but its owner may read or write, at least
/// 32 bytes and at most 4096.
enum SessionTicketSeedFile {
  static func read(_ path: String) -> Result<SessionTicketSeed, SessionTicketSeedError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else {
      return .failure(errno == ENOENT ? .missing : .unreadable("\(Errno.current)"))
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return .failure(.unreadable("\(Errno.current)")) }
    guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.unreadable("it is not a regular file")) }
    guard info.st_mode & 0o077 == 0 else { return .failure(.permissive(UInt32(info.st_mode & 0o7777))) }
    let limit = SessionTicketSeed.maximumLength + 1
    var bytes = [UInt8](repeating: 0, count: limit)
    var count = 0
    while count < limit {
      let result = bytes.withUnsafeMutableBytes { buffer in
        #if canImport(Glibc)
          Glibc.read(fd, buffer.baseAddress! + count, limit - count)
        #elseif canImport(Musl)
          Musl.read(fd, buffer.baseAddress! + count, limit - count)
        #endif
      }
      if result < 0, errno == EINTR { continue }
      guard result >= 0 else { return .failure(.unreadable("\(Errno.current)")) }
      if result == 0 { break }
      count += result
    }
    defer { bytes.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0, $0.count) } }
    do throws(SessionTicketSeedError) {
      return .success(try SessionTicketSeed(bytes.prefix(count)))
    } catch {
      return .failure(error)
    }
  }
}
