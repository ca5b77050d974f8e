import GRPCCore

/// `FetchSecrets` found no valid secret to answer with yet: UNAVAILABLE, marked in the trailers
/// so that the agent's own health check can tell it from a server that does not answer.
package struct SecretsNotReady: AgentFailure, RPCErrorConvertible {
  package enum Code: String, Sendable {
    case notReady = "not_ready"
  }

  package let names: [String]

  package init(names: [String]) {
    self.names = names
  }

  package var code: Code { .notReady }
  package var message: String { "no valid certificate is available yet for \(self.names)" }
  package var remedy: String? { "retry shortly" }
  package var description: String { self.failureText }

  package var rpcErrorCode: RPCError.Code { .unavailable }
  package var rpcErrorMessage: String { self.failureText }

  package var rpcErrorMetadata: Metadata { [Self.markerKey: .string(Self.markerValue)] }

  /// Whether `error` is this one, as a client sees it.
  package static func matches(_ error: RPCError) -> Bool {
    error.code == .unavailable && error.metadata[stringValues: Self.markerKey].contains(Self.markerValue)
  }

  static let markerKey = "sds-agent-not-ready"
  static let markerValue = "no-certificate"
}
