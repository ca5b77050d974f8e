import Foundation
import SDSAgent
import SDSAgentCore

extension FuzzTarget {
  /// A bearer token: read unverified (`UnverifiedJWT`, the agent's own token) and checked by the
  /// CA server's `JWTCallerAuthenticator`, which trusts `FuzzKey`. An accepted token names an
  /// identity in the authenticator's trust domain.
  static let jwt = FuzzTarget(
    name: "jwt",
    summary: "UnverifiedJWT and JWTCallerAuthenticator.authenticate on arbitrary tokens"
  ) { data in
    let token = String(decoding: data, as: UTF8.self)
    let unverified = (try? UnverifiedJWT(token)) != nil ? "reads as a JWT" : "not a JWT"
    let authenticator = JWTFixture.authenticator
    let outcome = runBlocking { await authenticator.authenticate(bearerToken: token) }
    switch outcome {
    case .authenticated(let id):
      FuzzTarget.check(id.trustDomain == JWTFixture.trustDomain, "a token authenticated \(id)")
      FuzzTarget.check(id.path.hasPrefix("/ns/"), "a token authenticated \(id)")
      return "\(unverified), authenticated \(id)"
    case .refused(let reason):
      return "\(unverified), refused: \(reason)"
    }
  }
}

enum JWTFixture {
  static let trustDomain = "cluster.local"

  /// Loaded once, through the same file loading as `ca serve --jwt-keys`.
  static let authenticator: JWTCallerAuthenticator = {
    let file = FileManager.default.temporaryDirectory
      .appendingPathComponent("sds-agent-fuzz-jwt-\(ProcessInfo.processInfo.processIdentifier).pem").path
    _ = FileManager.default.createFile(atPath: file, contents: Data(FuzzKey.p256.publicKey.pemRepresentation.utf8))
    defer { try? FileManager.default.removeItem(atPath: file) }
    return runBlocking {
      try! await JWTCallerAuthenticator.load(keysFile: file, trustDomain: trustDomain)
    }
  }()
}
