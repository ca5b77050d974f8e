/// `jwt-svid:<audience>`: a JWT-SVID of the stream's identity, held while the stream subscribes
/// to it and pushed on it at every renewal.
extension SecretDiscoveryService {
  /// Whether `jwt-svid:` names are served: only where the agent signs JWT-SVIDs, and only on
  /// streams, which get the renewed tokens.
  func jwtSVIDNames(onStream: Bool) -> JWTSVIDNames {
    guard self.jwtSVIDs != nil else { return .notSigned }
    return onStream ? .served : .notOnFetch
  }

  /// Holds the audiences among the stream's subscriptions, in place of those it held.
  func holdJWTSVIDs<Machine>(_ subscribed: [RequestedSecret], in session: Session<Machine>) throws(SDSRequestError) {
    guard let provider = self.jwtSVIDs else { return }
    let audiences = subscribed.compactMap { secret -> JWTAudience? in
      if case .jwtSVID(let audience) = secret.resource { return audience }
      return nil
    }
    let refused = provider.hold(
      Set(audiences), by: session.streamID, identity: session.caller.identity, cache: session.cache)
    guard refused.isEmpty else {
      throw .tooManyAudiences(
        refused, caller: session.caller.identity, limit: provider.maximumAudiencesPerIdentity)
    }
  }
}
