/// Signs and renews the JWT-SVIDs SDS streams ask for (`jwt-svid:<audience>`): `JWTSVIDTokens`.
package protocol JWTSVIDProvider: Sendable {
  /// The most audiences the streams of one identity may hold together.
  var maximumAudiencesPerIdentity: Int { get }
  /// The stream `holder` of `identity` now holds exactly these audiences. A token not held yet is
  /// signed at once and served in `cache`, which the stream follows; each is renewed at half its
  /// life while a stream holds it. Returns the audiences refused over the limit.
  func hold(
    _ audiences: Set<JWTAudience>, by holder: UInt64, identity: SPIFFEID, cache: SecretCache
  ) -> [JWTAudience]
  /// The stream `holder` ended.
  func release(_ holder: UInt64)
  /// A token was found expired by the wall clock (after a suspend or a clock step): what is due
  /// is signed now, not at the next timer.
  func noticeExpired()
}
