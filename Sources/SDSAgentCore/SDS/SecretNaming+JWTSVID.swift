/// Whether a caller's `jwt-svid:<audience>` names are served and, if not, why.
package enum JWTSVIDNames: Sendable, Equatable {
  /// On a stream of an agent that signs JWT-SVIDs.
  case served
  /// The agent signs no JWT-SVIDs: the Workload API is turned off.
  case notSigned
  /// A `FetchSecrets`, which answers once: its token would never be renewed.
  case notOnFetch
}

extension SecretNaming {
  /// The audience a `jwt-svid:` name asks for; nil if it is not a valid audience (an unknown
  /// name). Throws where such names are not served.
  func jwtSVIDAudience(_ name: String) throws(SDSRequestError) -> JWTAudience? {
    switch self.jwtSVIDs {
    case .served: return JWTAudience(secretName: name)
    case .notSigned: throw .jwtSVIDsNotSigned(name)
    case .notOnFetch: throw .jwtSVIDsOnStreamsOnly(name)
    }
  }
}

extension SDSRequestError {
  static func jwtSVIDsNotSigned(_ name: String) -> Self {
    Self(
      code: .unknownResource,
      message: "\(Self.quoted([name])) is not served: this agent signs no JWT-SVIDs (--workload-api is false); "
        + "jwt-svid:<audience> needs the Workload API"
    )
  }

  static func jwtSVIDsOnStreamsOnly(_ name: String) -> Self {
    Self(
      code: .unknownResource,
      message: "\(Self.quoted([name])) is served on StreamSecrets and DeltaSecrets streams, which renew it; "
        + "FetchSecrets answers once (the Workload API's FetchJWTSVID signs a single token)"
    )
  }

  static func tooManyAudiences(_ audiences: [JWTAudience], caller: SPIFFEID, limit: Int) -> Self {
    Self(
      code: .tooManyAudiences,
      message: "\(caller) may not hold \(Self.quoted(audiences.map(\.secretName))): the streams of one identity "
        + "hold at most \(limit) jwt-svid: audiences together; end streams that hold others"
    )
  }
}
