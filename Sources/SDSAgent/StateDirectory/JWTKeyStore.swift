import Crypto
import Foundation
import SDSAgentCore

/// The key that signs JWT-SVIDs, kept beside the CA key in the state directory (0600): made on
/// the first start, read on every later one, so a token outlives a restart.
enum JWTKeyStore {
  static let keyFileName = "jwt-signing-key.pem"

  static func loadOrGenerate(stateDirectory: String) throws -> JWTSigningKey {
    try SecureFile.ensurePrivateDirectory(stateDirectory)
    let path = (stateDirectory as NSString).appendingPathComponent(self.keyFileName)
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
}
