import EnvoySDSProtos
import Foundation
import GRPCCore
import SwiftProtobuf

/// The JWT profile: `FetchJWTSVID` and `ValidateJWTSVID` (one request, one answer) and
/// `FetchJWTBundles` (a stream), for a leased caller. Tokens are never logged.
extension WorkloadAPIService {
  package typealias JWTSVIDCall = SecretStream<SpiffeWorkload_JWTSVIDRequest, SpiffeWorkload_JWTSVIDResponse>
  package typealias JWTBundlesCall = SecretStream<SpiffeWorkload_JWTBundlesRequest, SpiffeWorkload_JWTBundlesResponse>
  package typealias ValidateJWTSVIDCall = SecretStream<
    SpiffeWorkload_ValidateJWTSVIDRequest, SpiffeWorkload_ValidateJWTSVIDResponse
  >

  /// `FetchJWTSVID`: a JWT-SVID of the caller's identity for the audience asked; another
  /// identity's is PERMISSION_DENIED. One that must come from the CA is answered off the event
  /// loop, once the CA signed it.
  package func openFetchJWTSVID(_ lease: SecretLease, issuer: any JWTSVIDSource) -> JWTSVIDCall {
    let identity = lease.caller.identity
    let credential = lease.caller.credential
    return self.unary(lease, rpc: "FetchJWTSVID") {
      request throws(JWTSVIDFailure) -> Answer<SpiffeWorkload_JWTSVIDResponse> in
      guard !request.audience.isEmpty else {
        throw JWTSVIDFailure(.invalidRequest, "audience must be specified")
      }
      guard request.spiffeID.isEmpty || request.spiffeID == identity.description else {
        throw JWTSVIDFailure(
          .notEntitled,
          "the caller is \(identity), not \(JWTSVIDFailure.quoted(request.spiffeID)): a caller gets only its own SVID")
      }
      let respond: @Sendable (JWTSVID) -> SpiffeWorkload_JWTSVIDResponse = { svid in
        var message = SpiffeWorkload_JWTSVID()
        message.spiffeID = identity.description
        message.svid = svid.token
        var response = SpiffeWorkload_JWTSVIDResponse()
        response.svids = [message]
        return response
      }
      if let ready = issuer.svidAtOnce(for: identity, audience: request.audience, now: self.now()) {
        return .now(respond(try ready.get()))
      }
      let audience = request.audience
      return .later { () async throws(JWTSVIDFailure) in
        respond(try await issuer.svid(for: identity, audience: audience, credential: credential, now: self.now()))
      }
    }
  }

  /// `ValidateJWTSVID`: the token's SPIFFE ID and claims, or INVALID_ARGUMENT with the reason.
  package func openValidateJWTSVID(_ lease: SecretLease, issuer: any JWTSVIDSource) -> ValidateJWTSVIDCall {
    self.unary(lease, rpc: "ValidateJWTSVID") {
      request throws(JWTSVIDFailure) -> Answer<SpiffeWorkload_ValidateJWTSVIDResponse> in
      let bundles = Self.jwtBundles(lease, issuer: issuer)
      let validated = try bundles.validator.validate(request.svid, audience: request.audience, now: self.now())
      var response = SpiffeWorkload_ValidateJWTSVIDResponse()
      response.spiffeID = validated.spiffeID.description
      do {
        response.claims = try Google_Protobuf_Struct(jsonUTF8Data: validated.claimsJSON)
      } catch {
        throw JWTSVIDFailure(.malformed, "the token's claims are not a JSON object")
      }
      return .now(response)
    }
  }

  /// `FetchJWTBundles`: the JWK set of each trust domain the agent has one for (its own and the
  /// federated ones with JWT keys), keyed by its SPIFFE ID; sent at the request and pushed
  /// whenever one changes (a key prepared, switched to or retired; a federated file).
  package func openFetchJWTBundles(_ lease: SecretLease, issuer: any JWTSVIDSource) -> JWTBundlesCall {
    var sent: UInt64?
    return SecretStream(
      cache: lease.cache, logger: self.logger,
      handle: { event throws(JWTSVIDFailure) -> SecretDiscoveryService.Step<SpiffeWorkload_JWTBundlesResponse> in
        let revision = lease.cache.current.jwtBundlesRevision
        switch event {
        case .request:
          guard sent == nil else {
            throw JWTSVIDFailure(.invalidRequest, "FetchJWTBundles takes exactly one request message")
          }
          self.count("FetchJWTBundles", "ok")
        case .secretsChanged:
          guard let last = sent, last != revision else { return .wait }
        case .requestFailed(let error): throw JWTSVIDFailure(.invalidRequest, error.message)
        case .requestsEnded: return .wait
        }
        sent = revision
        var response = SpiffeWorkload_JWTBundlesResponse()
        for bundle in Self.jwtBundles(lease, issuer: issuer).bundles {
          response.bundles[bundle.trustDomain.spiffeID] = bundle.jwks()
        }
        return .send(response)
      },
      close: { lease.release() })
  }

  /// The JWT bundles the node serves, with the issuer's own keys as they are at this moment.
  private static func jwtBundles(_ lease: SecretLease, issuer: any JWTSVIDSource) -> JWTBundleSet {
    var bundles = lease.cache.current.jwtBundles
    if let own = issuer.ownBundle { bundles.own = own }
    return bundles
  }

  /// A unary call's answer: made at once, or off the event loop.
  enum Answer<Response: Sendable> {
    case now(Response)
    case later(@Sendable () async throws(JWTSVIDFailure) -> Response)
  }

  /// A call of one request and one answer, made once the client half-closed.
  private func unary<Request: Sendable, Response: Sendable>(
    _ lease: SecretLease, rpc: String, answer: @escaping (Request) throws(JWTSVIDFailure) -> Answer<Response>
  ) -> SecretStream<Request, Response> {
    var request: Request?
    var messages = 0
    var logger = self.logger
    logger[metadataKey: "rpc"] = "\(rpc)"
    logger[metadataKey: "identity"] = "\(lease.caller.identity)"
    return SecretStream(
      cache: nil, logger: logger,
      handle: { event throws(JWTSVIDFailure) -> SecretDiscoveryService.Step<Response> in
        switch event {
        case .request(let message):
          messages += 1
          guard messages == 1 else { throw JWTSVIDFailure(.invalidRequest, "\(rpc) takes exactly one request message") }
          request = message
          return .wait
        case .requestFailed(let error): throw JWTSVIDFailure(.invalidRequest, error.message)
        case .secretsChanged: return .wait
        case .requestsEnded:
          guard let request else { throw JWTSVIDFailure(.invalidRequest, "\(rpc) takes exactly one request message") }
          let answered:
            @Sendable (Result<Response, JWTSVIDFailure>) throws(JWTSVIDFailure) ->
              SecretDiscoveryService.Step<
                Response
              > = { [logger] result throws(JWTSVIDFailure) in
                switch result {
                case .success(let response):
                  logger.debug("answered a Workload API request")
                  self.count(rpc, "ok")
                  return .sendAndEnd(response)
                case .failure(let error):
                  logger.debug("refused a Workload API request", metadata: ["reason": "\(error.message)"])
                  self.count(rpc, error.code.rawValue)
                  throw error
                }
              }
          switch Result(catching: { () throws(JWTSVIDFailure) in try answer(request) }) {
          case .failure(let error): return try answered(.failure(error))
          case .success(.now(let response)): return try answered(.success(response))
          case .success(.later(let work)):
            return .later { () async throws(RPCError) in
              do throws(JWTSVIDFailure) {
                return try answered(.success(try await work()))
              } catch {
                do throws(JWTSVIDFailure) {
                  return try answered(.failure(error))
                } catch {
                  throw RPCError(error)
                }
              }
            }
          }
        }
      },
      close: { lease.release() })
  }
}
