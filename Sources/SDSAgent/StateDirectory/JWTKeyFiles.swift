import Crypto
import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The JWT signing keys in the state directory, beside the CA's, so that a token outlives a
/// restart and a rotation resumes in any phase:
///
/// - `jwt-signing-key.pem` (0600): the key that signs; made on the first start;
/// - `jwt-next-signing-key.pem` (0600): the key prepared with a root rotation, signing from its switch;
/// - `jwt-retiring-keys.json`: the public keys that signed before a switch, each with the time
///   its last token expires and the `kid` that replaced it; gone once the last has retired.
///
/// A key that stops signing is deleted at the switch (the next key is renamed over it); only its
/// public key stays, until it retires.
package struct JWTKeyFiles: JWTSigningKeyStore {
  package static let keyFileName = "jwt-signing-key.pem"
  package static let nextKeyFileName = "jwt-next-signing-key.pem"
  package static let retiringFileName = "jwt-retiring-keys.json"

  package let stateDirectory: String

  package init(stateDirectory: String) {
    self.stateDirectory = stateDirectory
  }

  private func path(_ name: String) -> String {
    (self.stateDirectory as NSString).appendingPathComponent(name)
  }

  var keyPath: String { self.path(Self.keyFileName) }
  var nextKeyPath: String { self.path(Self.nextKeyFileName) }
  var retiringPath: String { self.path(Self.retiringFileName) }

  // MARK: - JWTSigningKeyStore

  package func makeNext() throws -> JWTSigningKey {
    let key = P256.Signing.PrivateKey()
    try SecureFile.write(key.pemRepresentation + "\n", to: self.nextKeyPath, mode: 0o600)
    return JWTSigningKey(key)
  }

  package func switched(_ keys: JWTSigningKeys) throws {
    // The record first: it names the key that replaced the old one, so a restart finishes the rename.
    try self.write(keys.retiring)
    try self.promoteNextKey()
  }

  package func retired(_ keys: JWTSigningKeys) throws {
    try self.write(keys.retiring)
  }

  // MARK: - Loading

  /// The keys as the state directory holds them, in step with the root rotation's `phase`
  /// (`nil`: none in progress): a prepared rotation has a next key (made now if its prepare was
  /// interrupted), a switch the record names is finished, a next key that no rotation recorded is
  /// removed, and keys whose retirement has passed are dropped.
  package func load(rootPhase phase: RootRotation.Phase?, ttl: Duration, now: Date) throws -> JWTSigningKeys {
    try SecureFile.ensurePrivateDirectory(self.stateDirectory)
    var retiring = try self.readRetiring()
    let recorded = retiring
    retiring.removeAll { $0.retireAt <= now }
    var signing = try self.loadOrGenerate(self.keyPath)
    var next: JWTSigningKey?
    if SecureFile.exists(self.nextKeyPath) {
      let prepared = try self.loadOrGenerate(self.nextKeyPath)
      if recorded.contains(where: { $0.replacedBy == prepared.kid }) {
        try self.promoteNextKey()
        signing = prepared
      } else if phase == .prepared {
        next = prepared
      } else if phase == .switched {
        // The root switched but the key's switch was not recorded: it is made now.
        var keys = JWTSigningKeys(signing: signing, next: prepared, retiring: retiring)
        keys.switchToNext(at: now, ttl: ttl)
        try self.switched(keys)
        return keys
      } else {
        // A prepare that no rotation recorded: that rotation never started.
        try self.remove(self.nextKeyPath)
      }
    } else if phase == .prepared {
      next = try self.makeNext()
    }
    if retiring != recorded { try self.write(retiring) }
    return JWTSigningKeys(signing: signing, next: next, retiring: retiring)
  }

  private func loadOrGenerate(_ path: String) throws -> JWTSigningKey {
    if SecureFile.exists(path) {
      let pem = try SecureFile.read(path, isPrivate: true, what: "JWT signing key")
      do {
        return JWTSigningKey(try P256.Signing.PrivateKey(pemRepresentation: pem))
      } catch {
        throw AgentError(.caFiles, "the JWT signing key \(path) is not a P-256 private key", cause: error)
      }
    }
    let key = P256.Signing.PrivateKey()
    try SecureFile.write(key.pemRepresentation + "\n", to: path, mode: 0o600)
    return JWTSigningKey(key)
  }

  private func readRetiring() throws -> [JWTSigningKeys.Retiring] {
    guard SecureFile.exists(self.retiringPath) else { return [] }
    let text = try SecureFile.read(self.retiringPath, isPrivate: false, what: "retiring JWT keys")
    do {
      return try Self.decoder.decode([JWTSigningKeys.Retiring].self, from: Data(text.utf8))
    } catch {
      throw AgentError(
        .stateDirectory,
        "the record of retiring JWT keys \(self.retiringPath) is corrupt (\(BoundedText(String(describing: error)))); "
          + "restore it from a backup, or remove it: tokens of those keys then no longer validate")
    }
  }

  private func write(_ retiring: [JWTSigningKeys.Retiring]) throws {
    guard !retiring.isEmpty else { return try self.remove(self.retiringPath) }
    let data: Data
    do {
      data = try Self.encoder.encode(retiring)
    } catch {
      throw AgentError(.stateDirectory, "cannot encode the record of retiring JWT keys", cause: error)
    }
    try SecureFile.write(String(decoding: data, as: UTF8.self) + "\n", to: self.retiringPath, mode: 0o644)
  }

  private func promoteNextKey() throws(AgentError) {
    guard SecureFile.exists(self.nextKeyPath) else { return }
    guard rename(self.nextKeyPath, self.keyPath) == 0 else {
      throw AgentError(.stateDirectory, "cannot rename \(self.nextKeyPath) to \(self.keyPath): \(Errno.current)")
    }
  }

  private func remove(_ path: String) throws(AgentError) {
    guard unlink(path) == 0 || errno == ENOENT else {
      throw AgentError(.stateDirectory, "cannot remove \(path): \(Errno.current)")
    }
  }

  private static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
  }

  private static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}
