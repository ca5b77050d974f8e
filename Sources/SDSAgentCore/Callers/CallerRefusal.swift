import GRPCCore

/// Why a caller gets nothing: the stream ends with this status and message.
package struct CallerRefusal: AgentFailure, Equatable {
  package enum Code: String, Sendable {
    /// The caller's proof of identity is missing or invalid: UNAUTHENTICATED.
    case unauthenticated
    /// The caller is known but may not have what it asked for: PERMISSION_DENIED.
    case permissionDenied = "permission_denied"
    /// The caller exceeded its rate: RESOURCE_EXHAUSTED.
    case rateLimited = "rate_limited"
    /// Its certificate cannot be obtained now: UNAVAILABLE.
    case unavailable
  }

  package let code: Code
  package let message: String
  /// What made the caller's proof or certificate unusable, already said in `message`.
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package var description: String { self.message }

  /// Two refusals are the same when they say the same; what caused them does not count.
  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.code == rhs.code && lhs.message == rhs.message
  }
}

extension CallerRefusal: RPCErrorConvertible {
  package var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .unauthenticated: return .unauthenticated
    case .permissionDenied: return .permissionDenied
    case .rateLimited: return .resourceExhausted
    case .unavailable: return .unavailable
    }
  }

  package var rpcErrorMessage: String { self.message }
}
