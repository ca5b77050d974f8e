/// Where the JWT signing keys' phases are made durable (the state directory), so that an agent
/// restarted in any phase of a rotation resumes it. Each method returns once it is on disk.
package protocol JWTSigningKeyStore: Sendable {
  /// Makes and keeps (privately) the key that will sign from the next switch.
  func makeNext() throws -> JWTSigningKey
  /// `keys.signing` (the prepared key) signs from now; `keys.retiring` are published until they retire.
  func switched(_ keys: JWTSigningKeys) throws
  /// Keys retired: `keys.retiring` are the ones still published.
  func retired(_ keys: JWTSigningKeys) throws
}
