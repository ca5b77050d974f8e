import Foundation
import JWTKit

/// A service-account token signer whose public key `ca serve` takes as `--jwt-keys`.
struct BenchTokenIssuer {
  struct Claims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    func verify(using algorithm: some JWTAlgorithm) async throws {}
  }

  let keys = JWTKeyCollection()
  let keysFile: String

  init(directory: String) async throws {
    self.keysFile = directory + "/jwt-keys.pem"
    let key = ES256PrivateKey()
    await self.keys.add(ecdsa: key)
    try key.publicKey.pemRepresentation.write(toFile: self.keysFile, atomically: true, encoding: .utf8)
  }

  func token(subject: String) async throws -> String {
    try await self.keys.sign(
      Claims(
        iss: .init(value: "https://kubernetes.default.svc.cluster.local"), sub: .init(value: subject),
        aud: .init(value: ["istio-ca"]), exp: .init(value: Date().addingTimeInterval(3600))))
  }
}
