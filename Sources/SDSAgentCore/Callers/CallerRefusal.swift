import GRPCCore

/// Why a caller gets nothing: the stream ends with this status and message.
public struct CallerRefusal: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Code: String, Sendable {
    /// The caller's proof of identity is missing or invalid: UNAUTHENTICATED.
    case unauthenticated
    /// The caller is known but may not have what it asked for: PERMISSION_DENIED.
    case permissionDenied = "permission_denied"
    /// The caller exceeded its rate: RESOURCE_EXHAUSTED.
    case rateLimited = "rate_limited"
    /// Its certificate cannot be obtained now: UNAVAILABLE.
    case unavailable
  }

  public let code: Code
  public let message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { self.message }
}

extension CallerRefusal: RPCErrorConvertible {
  public var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .unauthenticated: return .unauthenticated
    case .permissionDenied: return .permissionDenied
    case .rateLimited: return .resourceExhausted
    case .unavailable: return .unavailable
    }
  }

  public var rpcErrorMessage: String { self.message }
}
