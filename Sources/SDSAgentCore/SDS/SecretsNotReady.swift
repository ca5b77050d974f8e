import GRPCCore

/// `FetchSecrets` found no valid secret to answer with yet: UNAVAILABLE, marked in the trailers
/// so that the agent's own health check can tell it from a server that does not answer.
public struct SecretsNotReady: AgentFailure, RPCErrorConvertible {
  public enum Code: String, Sendable {
    case notReady = "not_ready"
  }

  public let names: [String]

  public init(names: [String]) {
    self.names = names
  }

  public var code: Code { .notReady }
  public var message: String { "no valid certificate is available yet for \(self.names)" }
  public var remedy: String? { "retry shortly" }
  public var description: String { self.failureText }

  public var rpcErrorCode: RPCError.Code { .unavailable }
  public var rpcErrorMessage: String { self.failureText }

  public var rpcErrorMetadata: Metadata { [Self.markerKey: .string(Self.markerValue)] }

  /// Whether `error` is this one, as a client sees it.
  public static func matches(_ error: RPCError) -> Bool {
    error.code == .unavailable && error.metadata[stringValues: Self.markerKey].contains(Self.markerValue)
  }

  static let markerKey = "sds-agent-not-ready"
  static let markerValue = "no-certificate"
}
