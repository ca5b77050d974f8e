import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging

/// `sdsagent.ca.v1.JWTSVIDService`, `ca serve`'s own API beside `IstioCertificateService`: signs
/// JWT-SVIDs with the CA's JWT keys for the agents that fetch their certificates from it, and
/// publishes those keys. A caller is authenticated and authorized as for `CreateCertificate`: a
/// bearer token, and only identities it may get certificates for (its own; a workload's of the
/// CA's trust domain for a trusted node identity); the admission control applies to both
/// methods. The JWT bundle is public keys, so `FetchJWTBundle` asks for no token. Tokens are
/// never logged.
package struct JWTSVIDSigningService: Sdsagent_Ca_V1_JWTSVIDService.ServiceProtocol {
  /// What signs, or why nothing does.
  package enum Keys: Sendable {
    case ring(JWTKeyRing)
    /// Answered UNIMPLEMENTED with this message.
    case unimplemented(String)
  }

  private let keys: Keys
  private let authenticator: any CallerAuthenticator
  private let trustedNodeIdentities: Set<SPIFFEID>
  private let admission: (any SigningAdmission)?
  private let logger: Logger
  private let now: @Sendable () -> Date

  /// The most audiences one token may carry.
  package static let maximumAudiences = 16

  package init(
    keys: Keys, authenticator: any CallerAuthenticator, trustedNodeIdentities: Set<SPIFFEID> = [],
    admission: (any SigningAdmission)? = nil, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.keys = keys
    self.authenticator = authenticator
    self.trustedNodeIdentities = trustedNodeIdentities
    self.admission = admission
    self.logger = logger
    self.now = now
  }

  package func signJWTSVID(
    request: ServerRequest<Sdsagent_Ca_V1_SignJWTSVIDRequest>, context: ServerContext
  ) async throws -> ServerResponse<Sdsagent_Ca_V1_SignJWTSVIDResponse> {
    let ring = try self.ring()
    try self.admit()
    defer { self.admission?.finished() }
    guard let token = request.metadata.bearerToken else {
      throw self.refuse(.unauthenticated, "no bearer token: send `authorization: Bearer <JWT>`")
    }
    let caller: SPIFFEID
    switch await self.authenticator.authenticate(bearerToken: token) {
    case .authenticated(let identity): caller = identity
    case .refused(let reason): throw self.refuse(.unauthenticated, reason)
    }
    if let admission, case .refused(let refusal) = admission.charge(caller: caller) {
      throw IstioCertificateSigner.overCapacity(refusal)
    }
    let identity = try self.identity(request.message.spiffeID, asked: caller, domain: ring.trustDomain)
    let audience = try self.audience(request.message.audience, caller: caller)
    let svid: JWTSVID
    do throws(JWTSVIDFailure) {
      svid = try ring.withSigningKey { (key: JWTSigningKey) throws(JWTSVIDFailure) -> JWTSVID in
        try JWTSVIDSigner(key: key).sign(identity, audience: audience, issuedAt: self.now(), ttl: ring.ttl)
      }
    } catch {
      self.logger.error("JWT-SVID signing failed", metadata: ["identity": "\(identity)", "error": "\(error)"])
      throw RPCError(code: .internalError, message: error.message)
    }
    self.logger.info(
      "signed JWT-SVID",
      metadata: [
        "identity": "\(identity)", "caller": "\(caller)", "kid": "\(svid.kid)",
        "audience": "\(BoundedText(audience.joined(separator: ",")))",
        "expires_at": "\(svid.expiresAt.formatted(.iso8601))",
      ])
    var response = Sdsagent_Ca_V1_SignJWTSVIDResponse()
    response.token = svid.token
    return ServerResponse(message: response)
  }

  package func fetchJWTBundle(
    request: ServerRequest<Sdsagent_Ca_V1_FetchJWTBundleRequest>, context: ServerContext
  ) async throws -> ServerResponse<Sdsagent_Ca_V1_FetchJWTBundleResponse> {
    let ring = try self.ring()
    try self.admit()
    defer { self.admission?.finished() }
    var response = Sdsagent_Ca_V1_FetchJWTBundleResponse()
    let bundle = ring.bundle
    response.trustDomain = bundle.trustDomain.name
    response.jwks = bundle.jwks()
    return ServerResponse(message: response)
  }

  private func ring() throws -> JWTKeyRing {
    switch self.keys {
    case .ring(let ring): return ring
    case .unimplemented(let reason): throw RPCError(code: .unimplemented, message: reason)
    }
  }

  /// Counts the call in flight, or refuses it before any work.
  private func admit() throws {
    if let admission = self.admission, case .refused(let refusal) = admission.start() {
      throw IstioCertificateSigner.overCapacity(refusal)
    }
  }

  /// The identity the token names: the caller's own, or a workload's of the CA's trust domain
  /// asked for by a trusted node identity.
  private func identity(_ text: String, asked caller: SPIFFEID, domain: TrustDomainName) throws -> SPIFFEID {
    guard !text.isEmpty else { return caller }
    guard let identity = try? SPIFFEID(parsing: text) else {
      throw self.refuse(.invalidArgument, "spiffe_id must be a SPIFFE ID", caller: caller)
    }
    guard identity != caller else { return identity }
    guard self.trustedNodeIdentities.contains(caller) else {
      throw self.refuse(
        .permissionDenied,
        "\(caller) may not request JWT-SVIDs for \(identity): it is not a trusted node identity", caller: caller)
    }
    guard TrustDomainName(of: identity) == domain else {
      throw self.refuse(
        .permissionDenied, "\(identity) is not in the CA's trust domain \(domain)", caller: caller)
    }
    return identity
  }

  /// 1 to `maximumAudiences` audiences, each 1 to 255 visible ASCII characters, duplicates dropped.
  private func audience(_ values: [String], caller: SPIFFEID) throws -> [String] {
    guard !values.isEmpty, values.count <= Self.maximumAudiences else {
      throw self.refuse(
        .invalidArgument, "a JWT-SVID needs 1 to \(Self.maximumAudiences) audiences; \(values.count) were asked",
        caller: caller)
    }
    var audience: [String] = []
    for value in values {
      guard let valid = JWTAudience(value) else {
        throw self.refuse(
          .invalidArgument,
          "the audience \(JWTSVIDFailure.quoted(value)) is not 1 to \(JWTAudience.maximumLength) visible ASCII characters",
          caller: caller)
      }
      if !audience.contains(valid.value) { audience.append(valid.value) }
    }
    return audience
  }

  private func refuse(_ code: RPCError.Code, _ message: String, caller: SPIFFEID? = nil) -> RPCError {
    let message = BoundedText(message, limit: IstioCertificateSigner.reasonLength).description
    self.logger.warning(
      "refused a JWT-SVID request",
      metadata: ["status": "\(code)", "reason": "\(message)", "caller": "\(caller.map(\.description) ?? "-")"])
    return RPCError(code: code, message: message)
  }
}
