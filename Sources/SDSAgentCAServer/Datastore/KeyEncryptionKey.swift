import Crypto
import Foundation
import SDSAgentCore

/// The key that seals the CA's private keys in the datastore (`--key-encryption-key`): 32 raw
/// random bytes in a file only its owner may read. Each key is sealed with ChaCha20-Poly1305, its
/// row's identity (the certificate it belongs to) as associated data, so a key row moved under
/// another certificate does not open.
package struct KeyEncryptionKey: Sendable {
  package static let setting = "--key-encryption-key"
  package static let byteCount = 32
  /// Sealed with every datastore's first key, to tell a wrong key from an altered row.
  static let verifierContext = Array("sds-agent datastore key-encryption-key verifier v1".utf8)

  private let key: SymmetricKey

  /// A key of exactly `byteCount` bytes.
  package init(bytes: [UInt8]) throws(DatastoreError) {
    guard bytes.count == Self.byteCount else {
      throw DatastoreError(
        .keyEncryptionKeyFile,
        "\(Self.setting) holds \(bytes.count) bytes, not \(Self.byteCount)",
        remedy: "write 32 random bytes: head -c 32 /dev/urandom > FILE; chmod 600 FILE")
    }
    self.key = SymmetricKey(data: bytes)
  }

  /// Reads the file at `path`: refused unless its mode grants nothing to group or others.
  package static func load(path: String) throws(DatastoreError) -> KeyEncryptionKey {
    let attributes: [FileAttributeKey: Any]
    let data: Data
    do {
      attributes = try FileManager.default.attributesOfItem(atPath: path)
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw DatastoreError(
        .keyEncryptionKeyFile, "\(Self.setting) \(BoundedText(path)) cannot be read", cause: error)
    }
    let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
    guard mode & 0o077 == 0 else {
      throw DatastoreError(
        .keyEncryptionKeyFile,
        "\(Self.setting) \(BoundedText(path)) has mode \(String(mode, radix: 8)): group or others may read it",
        remedy: "chmod 600 \(BoundedText(path))")
    }
    return try KeyEncryptionKey(bytes: Array(data))
  }

  /// `plaintext` sealed to `context`: nonce, ciphertext and tag in one value.
  package func seal(_ plaintext: [UInt8], context: [UInt8]) throws(DatastoreError) -> [UInt8] {
    do {
      return Array(try ChaChaPoly.seal(plaintext, using: self.key, authenticating: context).combined)
    } catch {
      throw DatastoreError(.query, "cannot seal a key for the datastore", cause: error)
    }
  }

  /// The plaintext of `sealed` if it was sealed with this key to `context`, else nil.
  package func open(_ sealed: [UInt8], context: [UInt8]) -> [UInt8]? {
    guard let box = try? ChaChaPoly.SealedBox(combined: sealed),
      let plaintext = try? ChaChaPoly.open(box, using: self.key, authenticating: context)
    else { return nil }
    return Array(plaintext)
  }

  /// A value only this key opens, kept in the datastore to recognise the key at start.
  package func verifier() throws(DatastoreError) -> [UInt8] {
    try self.seal(Array("ok".utf8), context: Self.verifierContext)
  }

  /// Whether `verifier` was made by this key.
  package func matches(verifier: [UInt8]) -> Bool {
    self.open(verifier, context: Self.verifierContext) != nil
  }

  /// The associated data of a root's key row: the certificate it belongs to.
  package static func context(ofRootKey certificateDER: [UInt8]) -> [UInt8] {
    Array("sds-agent datastore ca_roots.key v1\n".utf8) + certificateDER
  }
}
