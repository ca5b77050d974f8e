import Foundation
import JWTKit
import SDSAgentCore

/// Authenticates CA callers by Kubernetes service-account JWTs (ES256/RS256), verified with
/// the configured public keys: issuer, audience `istio-ca` and expiry are checked, and the
/// `sub` (`system:serviceaccount:<ns>:<sa>`) becomes `spiffe://<td>/ns/<ns>/sa/<sa>`.
package struct JWTCallerAuthenticator: CallerAuthenticator {
  package static let audience = "istio-ca"
  package static let defaultIssuers = [
    "https://kubernetes.default.svc.cluster.local", "https://kubernetes.default.svc", "kubernetes/serviceaccount",
  ]

  private let keys: JWTKeyCollection
  private let issuers: [String]
  private let trustDomain: String

  init(keys: JWTKeyCollection, issuers: [String], trustDomain: String) {
    self.keys = keys
    self.issuers = issuers
    self.trustDomain = trustDomain
  }

  /// Loads the keys from a PEM file of public keys or a JWKS document.
  package static func load(
    keysFile: String,
    issuers: [String] = Self.defaultIssuers,
    trustDomain: String
  ) async throws -> JWTCallerAuthenticator {
    guard let data = FileManager.default.contents(atPath: keysFile) else {
      throw AgentError(.caFiles, "cannot read the JWT keys file \(keysFile)")
    }
    let text = String(decoding: data, as: UTF8.self)
    let keys = JWTKeyCollection()
    if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
      do {
        try await keys.add(jwksJSON: text)
      } catch {
        throw AgentError(.caFiles, "\(keysFile) is not a usable JWKS document", cause: error)
      }
    } else {
      let blocks = text.components(separatedBy: "-----END PUBLIC KEY-----")
        .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        .filter { $0.contains("-----BEGIN PUBLIC KEY-----") }
        .map { $0 + "\n-----END PUBLIC KEY-----\n" }
      guard !blocks.isEmpty else {
        throw AgentError(.caFiles, "\(keysFile) holds neither PEM public keys nor a JWKS document")
      }
      for (index, pem) in blocks.enumerated() {
        let kid = JWKIdentifier(string: "pem-\(index)")
        if let key = try? ES256PublicKey(pem: pem) {
          await keys.add(ecdsa: key, kid: kid)
        } else if let key = try? Insecure.RSA.PublicKey(pem: pem) {
          await keys.add(rsa: key, digestAlgorithm: .sha256, kid: kid)
        } else {
          throw AgentError(.caFiles, "public key \(index + 1) in \(keysFile) is neither an ECDSA P-256 nor an RSA key")
        }
      }
    }
    return JWTCallerAuthenticator(keys: keys, issuers: issuers, trustDomain: trustDomain)
  }

  package func authenticate(bearerToken: String) async -> CallerAuthentication {
    let claims: ServiceAccountClaims
    do {
      claims = try await self.keys.verify(bearerToken, as: ServiceAccountClaims.self, iteratingKeys: true)
    } catch let error as JWTError where error.errorType == .claimVerificationFailure {
      return .refused("the token's claims are not acceptable: \(error.reason ?? "\(error)")")
    } catch {
      return .refused("the token does not verify with the configured keys: \(error)")
    }
    guard self.issuers.contains(claims.iss.value) else {
      return .refused("the token's issuer \"\(claims.iss.value)\" is not one of \(self.issuers)")
    }
    guard claims.aud.value.contains(Self.audience) else {
      return .refused("the token's audience \(claims.aud.value) does not include \"\(Self.audience)\"")
    }
    guard let account = ServiceAccount(subject: claims.sub.value) else {
      return .refused("the token's subject \"\(claims.sub.value)\" is not system:serviceaccount:<namespace>:<name>")
    }
    do {
      return .authenticated(try account.spiffeID(trustDomain: self.trustDomain))
    } catch {
      return .refused("the token's service account does not make a SPIFFE ID: \(error)")
    }
  }
}

struct ServiceAccountClaims: JWTPayload {
  var iss: IssuerClaim
  var sub: SubjectClaim
  var aud: AudienceClaim
  var exp: ExpirationClaim

  func verify(using algorithm: some JWTAlgorithm) async throws {
    try self.exp.verifyNotExpired()
  }
}
