/// Proves who calls the CA server, from the request's `authorization: Bearer` token.
package protocol CallerAuthenticator: Sendable {
  func authenticate(bearerToken: String) async -> CallerAuthentication
}

package enum CallerAuthentication: Sendable, Equatable {
  case authenticated(SPIFFEID)
  /// Why the token proves nothing; answered with UNAUTHENTICATED.
  case refused(String)
}
