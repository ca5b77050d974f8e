import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A trust bundle file: PEM or a SPIFFE bundle document, at most `BundleDocument.maximumSize`.
enum BundleFile {
  struct Failure: Error {
    /// A closed set: `missing`, `unreadable`, or a `BundleDocumentError.Reason`.
    let reason: String
    let message: String
  }

  /// The valid roots the file at `path` holds now.
  static func read(_ path: String, now: Date) -> Result<TrustBundle, Failure> {
    guard let signature = FileSignature(path: path) else {
      return .failure(Failure(reason: "missing", message: "it does not exist or cannot be looked at: \(Errno.current)"))
    }
    guard signature.size <= BundleDocument.maximumSize else {
      return .failure(
        Failure(
          reason: BundleDocumentError.Reason.tooLarge.rawValue,
          message: "it is \(signature.size) bytes; a bundle file is at most \(BundleDocument.maximumSize)"))
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      return .failure(Failure(reason: "unreadable", message: "it cannot be read: \(Errno.current)"))
    }
    do throws(BundleDocumentError) {
      return .success(try BundleDocument(parsing: data, now: now).trustBundle)
    } catch {
      return .failure(Failure(reason: error.reason.rawValue, message: error.message))
    }
  }
}

/// What `stat` says about a file (following symlinks): when any of it changes, the file is read
/// again.
struct FileSignature: Equatable, Sendable {
  let device: UInt64
  let inode: UInt64
  let size: Int
  let modified: timespec
  let changed: timespec

  init?(path: String) {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    self.device = UInt64(info.st_dev)
    self.inode = UInt64(info.st_ino)
    self.size = Int(info.st_size)
    self.modified = info.st_mtim
    self.changed = info.st_ctim
  }

  static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.device == rhs.device && lhs.inode == rhs.inode && lhs.size == rhs.size
      && lhs.modified.tv_sec == rhs.modified.tv_sec && lhs.modified.tv_nsec == rhs.modified.tv_nsec
      && lhs.changed.tv_sec == rhs.changed.tv_sec && lhs.changed.tv_nsec == rhs.changed.tv_nsec
  }
}
