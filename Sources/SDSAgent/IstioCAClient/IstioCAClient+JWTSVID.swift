import EnvoySDSProtos
import Foundation
import GRPCCore
import SDSAgentCore

/// `ca serve`'s `sdsagent.ca.v1.JWTSVIDService`, asked over the same connections, failover and
/// credentials as `CreateCertificate`: the JWT-SVIDs a fetch-mode agent serves and the JWT
/// bundle they verify with. istiod has no such service: it answers UNIMPLEMENTED, and so does the
/// agent's Workload API then.
extension IstioCAClient: JWTSVIDAuthority {
  /// The largest JWT bundle taken from the CA, in bytes.
  package static let maximumJWKSBytes = 256 * 1024
  /// The most keys taken from the CA's JWT bundle.
  package static let maximumJWTKeys = 64

  package func signJWTSVID(
    for identity: SPIFFEID, audience: [String], credential: CACredential
  ) async throws(JWTSVIDFailure) -> String {
    var request = Sdsagent_Ca_V1_SignJWTSVIDRequest()
    request.spiffeID = identity.description
    request.audience = audience
    let response: Sdsagent_Ca_V1_SignJWTSVIDResponse
    do throws(CertificateAuthorityError) {
      let metadata = try self.metadata(credential: credential)
      response = try await self.callInTurn { client, options in
        try await Sdsagent_Ca_V1_JWTSVIDService.Client(wrapping: client).signJWTSVID(
          request, metadata: metadata, options: options)
      }
    } catch {
      throw Self.jwtFailure(error)
    }
    guard !response.token.isEmpty, response.token.utf8.count <= JWTSVIDValidator.maximumTokenBytes else {
      throw JWTSVIDFailure(
        .unavailable, "the CA answered no JWT-SVID, or one over \(JWTSVIDValidator.maximumTokenBytes) bytes")
    }
    return response.token
  }

  package func fetchJWTBundle() async throws(JWTSVIDFailure) -> JWTBundle {
    let response: Sdsagent_Ca_V1_FetchJWTBundleResponse
    do throws(CertificateAuthorityError) {
      // Public keys: the CA asks for no token.
      var metadata = Metadata()
      metadata.addString(self.configuration.clusterID, forKey: "clusterid")
      response = try await self.callInTurn { client, options in
        try await Sdsagent_Ca_V1_JWTSVIDService.Client(wrapping: client).fetchJWTBundle(
          Sdsagent_Ca_V1_FetchJWTBundleRequest(), metadata: metadata, options: options)
      }
    } catch {
      throw Self.jwtFailure(error)
    }
    return try Self.bundle(response)
  }

  /// The CA's bundle: a trust domain name and a JWK set of at most `maximumJWTKeys` P-256 keys.
  package static func bundle(_ response: Sdsagent_Ca_V1_FetchJWTBundleResponse) throws(JWTSVIDFailure) -> JWTBundle {
    struct Document: Decodable { let keys: [JWK] }
    guard let domain = try? TrustDomainName(parsing: response.trustDomain) else {
      let named = BoundedText(response.trustDomain, limit: 64)
      throw JWTSVIDFailure(.unavailable, "the CA's JWT bundle names no valid trust domain (\"\(named)\")")
    }
    guard response.jwks.count <= Self.maximumJWKSBytes,
      let document = try? JSONDecoder().decode(Document.self, from: response.jwks),
      document.keys.count <= Self.maximumJWTKeys
    else {
      throw JWTSVIDFailure(
        .unavailable,
        "the CA's JWT bundle is not a JWK set of at most \(Self.maximumJWTKeys) keys and \(Self.maximumJWKSBytes) bytes"
      )
    }
    let keys = document.keys.compactMap { jwk in
      (jwk.use == nil || jwk.use == "jwt-svid") ? try? JWTPublicKey(jwk: jwk) : nil
    }
    return JWTBundle(trustDomain: domain, keys: keys)
  }

  /// What a workload is answered when the CA did not sign: UNIMPLEMENTED from a CA without the
  /// service (istiod), PERMISSION_DENIED or INVALID_ARGUMENT as the CA refused, else UNAVAILABLE.
  package static func jwtFailure(_ error: CertificateAuthorityError) -> JWTSVIDFailure {
    let code = (error.cause as? RPCError)?.code
    switch code {
    case .unimplemented?:
      return JWTSVIDFailure(.unimplemented, "the CA signs no JWT-SVIDs: \(error.message)")
    case .permissionDenied?, .unauthenticated?:
      return JWTSVIDFailure(.notEntitled, error.message)
    case .invalidArgument?:
      return JWTSVIDFailure(.invalidRequest, error.message)
    default:
      return JWTSVIDFailure(.unavailable, error.message)
    }
  }
}
