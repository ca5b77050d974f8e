import GRPCCore

/// Why a Workload API call ends without the state it asked for: UNAVAILABLE while the caller's
/// identity has no valid certificate (the client retries, as the Workload API specifies), INTERNAL
/// when what is served cannot be encoded.
package struct WorkloadAPIFailure: AgentFailure, RPCErrorConvertible {
  package enum Code: String, Sendable {
    /// No valid X.509-SVID or bundle yet (or any more): UNAVAILABLE.
    case notReady = "not_ready"
    /// A certificate or key that cannot be written as DER: INTERNAL.
    case encoding
    /// The client broke the method's shape (a second request): INVALID_ARGUMENT.
    case invalidRequest = "invalid_request"
  }

  package let code: Code
  package let message: String
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package var remedy: String? {
    switch self.code {
    case .notReady: "retry shortly"
    case .encoding, .invalidRequest: nil
    }
  }

  package var description: String { self.failureText }

  package var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .notReady: .unavailable
    case .encoding: .internalError
    case .invalidRequest: .invalidArgument
    }
  }

  package var rpcErrorMessage: String { self.failureText }
}
