import Foundation

/// Istio's names for secrets read from files on the fly: `file-cert:<cert-path>~<key-path>` (a
/// TLS certificate) and `file-root:<path>` (a validation context). Served only for absolute paths
/// without `..` under one of the operator's `file-secret-dirs`, never for an arbitrary file.
package struct OnTheFlyFileSecret: Sendable, Hashable {
  package enum Files: Sendable, Hashable {
    case tlsCertificate(cert: String, key: String)
    case validationContext(ca: String)
  }

  package let name: String
  package let files: Files

  package static let certificatePrefix = "file-cert:"
  package static let rootPrefix = "file-root:"

  /// The files, certificate first.
  package var paths: [String] {
    switch self.files {
    case .tlsCertificate(let cert, let key): [cert, key]
    case .validationContext(let ca): [ca]
    }
  }

  package static func isOnTheFly(_ name: String) -> Bool {
    name.hasPrefix(Self.certificatePrefix) || name.hasPrefix(Self.rootPrefix)
  }

  /// The secret `name` stands for, if its paths are allowed under `directories`; else why not.
  package init(parsing name: String, directories: [String]) throws(SDSRequestError) {
    let files: Files
    if name.hasPrefix(Self.certificatePrefix) {
      let parts = name.dropFirst(Self.certificatePrefix.count).split(separator: "~", omittingEmptySubsequences: false)
      guard parts.count == 2 else { throw .fileSecretRefused(name, "it must be file-cert:<cert-path>~<key-path>") }
      files = .tlsCertificate(cert: String(parts[0]), key: String(parts[1]))
    } else if name.hasPrefix(Self.rootPrefix) {
      files = .validationContext(ca: String(name.dropFirst(Self.rootPrefix.count)))
    } else {
      throw .fileSecretRefused(name, "it is not a file-cert: or file-root: name")
    }
    let paths: [String] =
      switch files {
      case .tlsCertificate(let cert, let key): [cert, key]
      case .validationContext(let ca): [ca]
      }
    guard !directories.isEmpty else {
      throw .fileSecretRefused(
        name, "file-cert: and file-root: names are served only under file-secret-dirs, and none is set")
    }
    for path in paths {
      guard path.hasPrefix("/"), !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
        throw .fileSecretRefused(name, "paths must be absolute, without . or .. components")
      }
      guard Self.isUnder(path, directories) else {
        throw .fileSecretRefused(name, "paths must be under file-secret-dirs (\(directories.joined(separator: ", ")))")
      }
    }
    self.name = name
    self.files = files
  }

  /// Whether `path`, and what it resolves to now, lie under one of `directories`. Only a first
  /// answer: the file is read by its real path, checked again at every read.
  package static func isUnder(_ path: String, _ directories: [String]) -> Bool {
    let lexical = directories.contains { path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    guard lexical else { return false }
    guard let real = realpath(path, nil) else { return true }  // not there yet: read later, checked then
    defer { free(real) }
    let resolved = String(cString: real)
    return directories.contains { directory in
      let base =
        (realpath(directory, nil).map { pointer in
          defer { free(pointer) }
          return String(cString: pointer)
        }) ?? directory
      return resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/")
    }
  }
}
