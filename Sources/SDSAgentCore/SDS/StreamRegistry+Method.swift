import Foundation

extension StreamRegistry {
  /// The RPC a listed stream is a call of: SDS's streams, whose ACKs a root rotation waits for,
  /// or the SPIFFE Workload API's calls. A closed set: the service's own paths, never a client's text.
  package enum Method: String, Sendable, CaseIterable {
    case streamSecrets = "StreamSecrets"
    case deltaSecrets = "DeltaSecrets"
    case fetchX509SVID = "FetchX509SVID"
    case fetchX509Bundles = "FetchX509Bundles"
    case fetchJWTSVID = "FetchJWTSVID"
    case fetchJWTBundles = "FetchJWTBundles"
    case validateJWTSVID = "ValidateJWTSVID"

    /// A call of the SPIFFE Workload API, not an Envoy's SDS stream.
    package var isWorkloadAPI: Bool {
      self != .streamSecrets && self != .deltaSecrets
    }
  }

  /// `stream`, listed as a call of `method` by `identity` from `date` until it is closed.
  package func listing<Request, Response>(
    _ stream: SecretStream<Request, Response>, method: Method, identity: SPIFFEID, at date: Date
  ) -> SecretStream<Request, Response> {
    let id = self.open(at: date, method: method)
    self.update(id) { $0.identity = identity.description }
    return SecretStream(
      cache: stream.cache, logger: stream.logger, handle: { try stream.handle($0) },
      close: {
        self.close(id)
        stream.close()
      })
  }
}
