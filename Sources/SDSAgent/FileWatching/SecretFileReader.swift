import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Reads a secret's file by what it is at that moment, never by its name alone: the path is
/// resolved to its real path, which must lie in the allowed directories (for `file-cert:` and
/// `file-root:` names) and not in the state directory; the real path is opened with
/// `O_NOFOLLOW`; the opened file must be a regular file of at most 1 MiB that is not the
/// agent's key material by device and inode, and its path, read back from `/proc/self/fd`,
/// must still lie where the real path did (a directory swapped meanwhile is caught).
struct SecretFileReader: Sendable {
  let keyMaterial: AgentKeyMaterial.Snapshot

  struct Read: Sendable {
    let data: Data
    let mode: mode_t
  }

  static let maximumSize = 1 << 20

  /// - Parameter directories: where the file must really lie; nil for a secret the operator
  ///   names, which may lie anywhere but in the agent's key material.
  func read(_ path: String, within directories: [String]?) throws(FileSecretError) -> Read {
    let shown = BoundedText(path)
    guard let resolved = realpath(path, nil) else {
      if errno == ENOENT || errno == ENOTDIR { throw FileSecretError(.missing, "\(shown) does not exist") }
      throw FileSecretError(.unreadable, "\(shown) cannot be resolved: \(Errno.current)")
    }
    let real = String(cString: resolved)
    free(resolved)
    let allowed = directories?.map(AgentKeyMaterial.resolved)
    try self.check(real, shown: shown, allowed: allowed)
    let descriptor = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
    guard descriptor >= 0 else {
      if errno == ENOENT { throw FileSecretError(.missing, "\(shown) does not exist") }
      throw FileSecretError(.unreadable, "\(shown) cannot be opened: \(Errno.current)")
    }
    defer { close(descriptor) }
    var info = stat()
    guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
      throw FileSecretError(.unreadable, "\(shown) is not a regular file")
    }
    if self.keyMaterial.holds(realPath: real, identity: AgentKeyMaterial.FileIdentity(info)) {
      throw FileSecretError(
        .agentKeyMaterial, "\(shown) is the agent's own key material (\(BoundedText(real))); it is never served")
    }
    guard let opened = Self.path(of: descriptor) else {
      throw FileSecretError(.unreadable, "\(shown): the opened file's path cannot be read back")
    }
    try self.check(opened, shown: shown, allowed: allowed)
    guard info.st_size <= Self.maximumSize else {
      throw FileSecretError(.tooLarge, "\(shown) is larger than 1 MiB")
    }
    return Read(data: try Self.contents(of: descriptor, shown: shown), mode: info.st_mode)
  }

  private func check(_ real: String, shown: BoundedText, allowed: [String]?) throws(FileSecretError) {
    if AgentKeyMaterial.holds(self.keyMaterial.stateDirectory, real) {
      throw FileSecretError(
        .agentKeyMaterial, "\(shown) resolves into the agent's state directory; it is never served")
    }
    if let allowed, !allowed.contains(where: { AgentKeyMaterial.holds($0, real) && $0 != real }) {
      throw FileSecretError(
        .outsideDirectories,
        "\(shown) resolves to \(BoundedText(real)), outside the directories its name may read "
          + "(\(allowed.map { BoundedText($0).description }.joined(separator: ", ")))")
    }
  }

  /// The path the kernel holds for an open file.
  private static func path(of descriptor: Int32) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  private static func contents(of descriptor: Int32, shown: BoundedText) throws(FileSecretError) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
      let count = buffer.withUnsafeMutableBytes { bytes in
        #if canImport(Glibc)
          Glibc.read(descriptor, bytes.baseAddress, bytes.count)
        #elseif canImport(Musl)
          Musl.read(descriptor, bytes.baseAddress, bytes.count)
        #endif
      }
      if count == 0 { return data }
      guard count > 0 else {
        if errno == EINTR { continue }
        throw FileSecretError(.unreadable, "\(shown) cannot be read: \(Errno.current)")
      }
      data.append(contentsOf: buffer[..<count])
      guard data.count <= Self.maximumSize else { throw FileSecretError(.tooLarge, "\(shown) is larger than 1 MiB") }
    }
  }
}
