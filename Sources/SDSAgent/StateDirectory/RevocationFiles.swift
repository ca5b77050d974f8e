import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What the embedded CA must not forget, in the state directory:
///
/// - `issued.jsonl`: one line per certificate signed (serial, SPIFFE ID, notAfter), appended and
///   flushed to disk before the certificate is served; rewritten without expired rows once they
///   are most of it. A crash mid-append leaves a torn last line, which only a certificate that was
///   never served can own: it is cut off at the next load.
/// - `revocations.json`: the revocations and the last CRL number, replaced atomically (written
///   beside, flushed, renamed, the directory flushed): an interrupted write leaves the old file.
package struct RevocationFiles: Sendable {
  package static let issuedFileName = "issued.jsonl"
  package static let revocationsFileName = "revocations.json"

  package let stateDirectory: String

  package init(stateDirectory: String) {
    self.stateDirectory = stateDirectory
  }

  var issuedPath: String { (self.stateDirectory as NSString).appendingPathComponent(Self.issuedFileName) }
  var revocationsPath: String { (self.stateDirectory as NSString).appendingPathComponent(Self.revocationsFileName) }

  /// Appends one row and flushes it to disk.
  package func append(_ row: IssuedCertificate) throws(AgentError) {
    try self.append([row])
  }

  /// Appends `rows` in order with one write and flushes them to disk with one `fsync`. A write
  /// that fails is cut off again where it can be, so the next append does not follow a torn line.
  package func append(_ rows: [IssuedCertificate]) throws(AgentError) {
    let encoder = JSONEncoder.sorted
    var lines: [UInt8] = []
    for row in rows {
      do {
        lines += Array(try encoder.encode(row)) + [UInt8(ascii: "\n")]
      } catch {
        throw AgentError(.stateDirectory, "cannot encode the record of certificate \(row.serial)", cause: error)
      }
    }
    let fd = open(self.issuedPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw AgentError(.stateDirectory, "cannot open \(self.issuedPath): \(Errno.current)")
    }
    defer { close(fd) }
    // The mode whatever the umask was at creation (binding a socket narrows it for a moment).
    guard fchmod(fd, 0o600) == 0 else {
      throw AgentError(.stateDirectory, "cannot set mode 0600 on \(self.issuedPath): \(Errno.current)")
    }
    let end = lseek(fd, 0, SEEK_END)
    do throws(AgentError) {
      try SecureFile.writeAll(lines, to: fd, path: self.issuedPath)
    } catch {
      if end >= 0 { _ = ftruncate(fd, end) }
      throw error
    }
    guard fsync(fd) == 0 else {
      throw AgentError(.stateDirectory, "cannot flush \(self.issuedPath) to disk: \(Errno.current)")
    }
  }

  /// The record as it was left: every complete row; a torn last line is cut off the file.
  package func loadIssued(capacity: Int = IssuedCertificates.defaultCapacity, now: Date) throws(AgentError)
    -> IssuedCertificates
  {
    guard let data = FileManager.default.contents(atPath: self.issuedPath) else {
      return IssuedCertificates(capacity: capacity)
    }
    let bytes = [UInt8](data)
    let complete = bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
    if complete < bytes.count, truncate(self.issuedPath, off_t(complete)) != 0 {
      throw AgentError(.stateDirectory, "cannot cut the torn last line of \(self.issuedPath): \(Errno.current)")
    }
    var issued = IssuedCertificates(capacity: capacity)
    var lineNumber = 0
    for line in bytes[..<complete].split(separator: UInt8(ascii: "\n")) {
      lineNumber += 1
      guard let row = try? JSONDecoder.iso8601.decode(IssuedCertificate.self, from: Data(line)) else {
        throw AgentError(
          .stateDirectory,
          "\(self.issuedPath) line \(lineNumber) is not a certificate record; restore the file from a backup or move it away (revocation by serial then knows only certificates issued after)"
        )
      }
      issued.record(row, at: now)
    }
    issued.prune(at: now)
    return issued
  }

  /// Replaces the record with its rows (after pruning expired ones).
  package func rewriteIssued(_ issued: IssuedCertificates) throws(AgentError) {
    var text = ""
    for row in issued.rows {
      guard let line = try? JSONEncoder.sorted.encode(row) else { continue }
      text += String(decoding: line, as: UTF8.self) + "\n"
    }
    try SecureFile.write(text, to: self.issuedPath, mode: 0o600)
    try self.flushDirectory()
  }

  package func saveRevocations(_ revocations: Revocations) throws(AgentError) {
    let data: Data
    do {
      data = try JSONEncoder.sorted.encode(revocations)
    } catch {
      throw AgentError(.stateDirectory, "cannot encode the revocations", cause: error)
    }
    try SecureFile.write(String(decoding: data, as: UTF8.self) + "\n", to: self.revocationsPath, mode: 0o600)
    try self.flushDirectory()
  }

  package func loadRevocations() throws(AgentError) -> Revocations {
    guard let data = FileManager.default.contents(atPath: self.revocationsPath) else { return Revocations() }
    do {
      return try JSONDecoder.iso8601.decode(Revocations.self, from: data)
    } catch {
      throw AgentError(
        .stateDirectory, "\(self.revocationsPath) cannot be read",
        remedy: "restore it from a backup — the agent does not start without its revocations", cause: error)
    }
  }

  private func flushDirectory() throws(AgentError) {
    let fd = open(self.stateDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw AgentError(.stateDirectory, "cannot open \(self.stateDirectory): \(Errno.current)") }
    defer { close(fd) }
    guard fsync(fd) == 0 else {
      throw AgentError(.stateDirectory, "cannot flush \(self.stateDirectory) to disk: \(Errno.current)")
    }
  }
}

extension JSONEncoder {
  fileprivate static var sorted: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    return encoder
  }
}

extension JSONDecoder {
  fileprivate static var iso8601: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}
