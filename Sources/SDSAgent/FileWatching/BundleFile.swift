import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A trust bundle file: PEM or a SPIFFE bundle document, at most `BundleDocument.maximumSize`.
enum BundleFile {
  struct Failure: AgentFailure {
    /// A closed set, usable as a metric label.
    enum Code: RawRepresentable, Sendable, Equatable {
      case missing
      case unreadable
      /// The content is not a usable bundle.
      case document(BundleDocumentError.Reason)

      init?(rawValue: String) {
        switch rawValue {
        case "missing": self = .missing
        case "unreadable": self = .unreadable
        default:
          guard let reason = BundleDocumentError.Reason(rawValue: rawValue) else { return nil }
          self = .document(reason)
        }
      }

      var rawValue: String {
        switch self {
        case .missing: "missing"
        case .unreadable: "unreadable"
        case .document(let reason): reason.rawValue
        }
      }
    }

    let code: Code
    let message: String
    /// Why the content is not a usable bundle, for `.document`.
    let document: BundleDocumentError?

    init(_ code: Code, _ message: String) {
      self.code = code
      self.message = message
      self.document = nil
    }

    init(_ document: BundleDocumentError) {
      self.code = .document(document.reason)
      self.message = document.message
      self.document = document
    }

    var cause: (any Error)? { self.document }
    /// The code as a metric label.
    var reason: String { self.code.rawValue }
    var description: String { "\(self.reason): \(self.message)" }
  }

  /// The valid roots the file at `path` holds now.
  static func read(_ path: String, now: Date) -> Result<TrustBundle, Failure> {
    Self.readDocument(path, now: now).map(\.trustBundle)
  }

  /// The file at `path` as it is now: its valid roots and, for a SPIFFE bundle, its JWT keys.
  static func readDocument(_ path: String, now: Date) -> Result<BundleDocument, Failure> {
    guard let signature = FileSignature(path: path) else {
      return .failure(Failure(.missing, "it does not exist or cannot be looked at: \(Errno.current)"))
    }
    guard signature.size <= BundleDocument.maximumSize else {
      let limit = BundleDocument.maximumSize
      return .failure(Failure(.document(.tooLarge), "it is \(signature.size) bytes; a bundle file is at most \(limit)"))
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      return .failure(Failure(.unreadable, "it cannot be read: \(Errno.current)"))
    }
    do throws(BundleDocumentError) {
      return .success(try BundleDocument(parsing: data, now: now))
    } catch {
      return .failure(Failure(error))
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
