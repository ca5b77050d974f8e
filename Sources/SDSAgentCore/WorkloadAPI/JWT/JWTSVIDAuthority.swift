/// The CA that signs JWT-SVIDs for a fetch-mode agent (`ca serve`'s `JWTSVIDService`), as
/// `FetchedJWTSVIDIssuer` asks it. A failure says what the workload is answered: UNAVAILABLE
/// while the CA cannot be reached, PERMISSION_DENIED when it refuses.
package protocol JWTSVIDAuthority: Sendable {
  /// The compact token the CA signed for `identity` and `audience`; not verified yet.
  func signJWTSVID(
    for identity: SPIFFEID, audience: [String], credential: CACredential
  ) async throws(JWTSVIDFailure) -> String
  /// The CA's JWT bundle: its trust domain's keys.
  func fetchJWTBundle() async throws(JWTSVIDFailure) -> JWTBundle
}
