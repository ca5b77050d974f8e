import Foundation

/// Where the Workload API and the `jwt-svid:<audience>` SDS secrets get JWT-SVIDs: the agent's
/// own keys (`JWTSVIDIssuer`, with the embedded CA) or the CA it fetches from
/// (`FetchedJWTSVIDIssuer`, `ca serve` in fetch mode). Either keeps a token per identity and
/// audience set until half its life has passed.
package protocol JWTSVIDSource: Sendable {
  /// The own trust domain's JWT bundle as known now; nil until it is known.
  var ownBundle: JWTBundle? { get }
  /// A token without waiting: one kept at less than half its life, or one signed here; nil when
  /// only `svid(for:audience:credential:now:)` can get one.
  func svidAtOnce(for identity: SPIFFEID, audience: [String], now: Date) -> Result<JWTSVID, JWTSVIDFailure>?
  /// A token, waiting for the CA if it must. `credential` is how the caller is known to the CA;
  /// nil: the source's choice for the identity.
  func svid(
    for identity: SPIFFEID, audience: [String], credential: CACredential?, now: Date
  ) async throws(JWTSVIDFailure) -> JWTSVID
}

extension JWTSVIDSource {
  /// Validates tokens of the own trust domain against its JWT bundle.
  package var validator: JWTSVIDValidator { JWTSVIDValidator(bundles: self.ownBundle.map { [$0] } ?? []) }
}

extension JWTSVIDIssuer: JWTSVIDSource {
  package var ownBundle: JWTBundle? { self.bundle }

  package func svidAtOnce(for identity: SPIFFEID, audience: [String], now: Date) -> Result<JWTSVID, JWTSVIDFailure>? {
    Result { () throws(JWTSVIDFailure) in try self.svid(for: identity, audience: audience, now: now) }
  }

  package func svid(
    for identity: SPIFFEID, audience: [String], credential: CACredential?, now: Date
  ) async throws(JWTSVIDFailure) -> JWTSVID {
    try self.svid(for: identity, audience: audience, now: now)
  }
}
