import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Reading one secret's files through a `SecretFileReader` and checking them.
extension FileSecretWatcher {
  static func read(_ entry: Entry, reader: SecretFileReader, now: Date) -> Result<
    (FileSecretContent, String?), FileSecretError
  > {
    let source = entry.source
    func file(_ index: Int, _ path: String) throws(FileSecretError) -> SecretFileReader.Read {
      try reader.read(path, within: entry.confinement?[index])
    }
    do throws(FileSecretError) {
      switch source.files {
      case .tlsCertificate(let cert, let key, let ocsp):
        let chain = try file(0, cert)
        let keyFile = try file(1, key)
        let warning = try Self.checkKeyPermissions(key, mode: keyFile.mode)
        var staple: Data?
        if let ocsp { staple = try file(2, ocsp).data }
        let content = try FileSecretContent.tlsCertificate(
          chainPEM: Self.text(chain), keyPEM: Self.text(keyFile), ocspStaple: staple, now: now)
        return .success((content, warning.map { "secret \(entry.shownName): \($0)" }))
      case .validationContext(let ca, let crl):
        let caPEM = Self.text(try file(0, ca))
        var list: Data?
        if let crl { list = try file(1, crl).data }
        let content = try FileSecretContent.validationContext(caPEM: caPEM, crl: list, now: now)
        let warning = list.flatMap { FileSecretContent.crlWarning(caPEM: caPEM, crl: $0, now: now) }
        return .success((content, warning.map { "secret \(entry.shownName): \($0)" }))
      case .generic(let files):
        return try Self.readGeneric(files, entry: entry, file: file)
      }
    } catch {
      return .failure(error)
    }
  }

  /// A generic secret's files, each held to the key files' permission rules.
  private static func readGeneric(
    _ files: GenericSecretFiles, entry: Entry,
    file: (Int, String) throws(FileSecretError) -> SecretFileReader.Read
  ) throws(FileSecretError) -> Result<(FileSecretContent, String?), FileSecretError> {
    let named: [(key: String?, path: String)] =
      switch files {
      case .single(let path): [(nil, path)]
      case .keyed(let keyed): keyed.map { ($0.key, $0.path) }
      }
    var values: [FileSecretContent.GenericValue] = []
    var warnings: [String] = []
    for (index, (key, path)) in named.enumerated() {
      let read = try file(index, path)
      if let warning = try Self.checkKeyPermissions(path, mode: read.mode) { warnings.append(warning) }
      values.append(.init(key: key, value: read.data, shown: BoundedText(path).description))
    }
    let content = try FileSecretContent.generic(values)
    let warning = warnings.isEmpty ? nil : "secret \(entry.shownName): " + warnings.joined(separator: "; ")
    return .success((content, warning))
  }

  /// Refuses a key others may write; warns about one others may read.
  static func checkKeyPermissions(_ path: String, mode: mode_t) throws(FileSecretError) -> String? {
    let shown = BoundedText(path)
    if mode & 0o022 != 0 {
      throw FileSecretError(.keyPermissions, "the key \(shown) is writable by group or others; run chmod 600 \(shown)")
    }
    if mode & 0o004 != 0 {
      return "the key \(shown) is readable by others (mode \(String(mode & 0o777, radix: 8))); "
        + "run chmod 600 \(shown), or in Kubernetes set the secret volume's defaultMode: 0400"
    }
    return nil
  }

  static func text(_ read: SecretFileReader.Read) -> String {
    String(decoding: read.data, as: UTF8.self)
  }
}
