import Foundation
import JWTKit

/// Service-account claims as Kubernetes mints them.
struct ServiceAccountTokenClaims: JWTPayload {
  var iss: IssuerClaim
  var sub: SubjectClaim
  var aud: AudienceClaim
  var exp: ExpirationClaim
  func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A signing key, its public half in a PEM file for --jwt-keys, and a token factory.
struct TokenIssuer {
  let keys = JWTKeyCollection()
  let directory: String

  init(directory: String) async throws {
    self.directory = directory
    let key = ES256PrivateKey()
    await self.keys.add(ecdsa: key)
    try key.publicKey.pemRepresentation.write(toFile: directory + "/jwt-keys.pem", atomically: true, encoding: .utf8)
  }

  var keysFile: String { self.directory + "/jwt-keys.pem" }

  func token(
    subject: String = "system:serviceaccount:web:frontend",
    audience: String = "istio-ca",
    issuer: String = "https://kubernetes.default.svc.cluster.local",
    expires: Date = Date().addingTimeInterval(3600)
  ) async throws -> String {
    try await self.keys.sign(
      ServiceAccountTokenClaims(
        iss: .init(value: issuer), sub: .init(value: subject), aud: .init(value: [audience]),
        exp: .init(value: expires))
    )
  }
}
