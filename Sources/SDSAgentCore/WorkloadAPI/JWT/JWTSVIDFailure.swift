import GRPCCore

/// Why a JWT-SVID is refused (`ValidateJWTSVID` answers INVALID_ARGUMENT with the reason, as
/// SPIRE does) or cannot be made. Values taken from a token are bounded before they are quoted.
package struct JWTSVIDFailure: AgentFailure, RPCErrorConvertible {
  package enum Code: String, Sendable {
    /// Not a JWT, or not one of ours: its form, algorithm, key or signature.
    case malformed
    case unsupportedAlgorithm = "unsupported_algorithm"
    case unknownKey = "unknown_key"
    case badSignature = "bad_signature"
    /// A trust domain the agent has no JWT bundle for.
    case unknownTrustDomain = "unknown_trust_domain"
    case expired
    case wrongAudience = "wrong_audience"
    /// The request lacks what it needs (an audience).
    case invalidRequest = "invalid_request"
    /// The caller asked for another identity's JWT-SVID: PERMISSION_DENIED.
    case notEntitled = "not_entitled"
    /// The agent could not sign.
    case signing
    /// The CA that signs JWT-SVIDs cannot be reached (fetch mode): UNAVAILABLE.
    case unavailable
    /// The CA signs no JWT-SVIDs (fetch mode): UNIMPLEMENTED.
    case unimplemented
  }

  package let code: Code
  package let message: String

  package init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  package var description: String { self.failureText }

  package var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .signing: .internalError
    case .notEntitled: .permissionDenied
    case .unavailable: .unavailable
    case .unimplemented: .unimplemented
    default: .invalidArgument
    }
  }
  package var rpcErrorMessage: String { self.failureText }

  /// A value from a token, as a refusal quotes it.
  static func quoted(_ text: String) -> String {
    "\"" + BoundedText(text, limit: 64).description + "\""
  }
}
