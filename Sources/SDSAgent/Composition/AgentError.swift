import SDSAgentCore

/// A failure at the agent's edges (files, sockets), saying what happened, what to do and what
/// caused it.
package struct AgentError: AgentFailure {
  package enum Code: String, Sendable {
    case socketInUse = "socket_in_use"
    case socketPath = "socket_path"
    case socketSetup = "socket_setup"
    case stateDirectory = "state_directory"
    case caFiles = "ca_files"
    case connection = "connection"
    case permissionDenied = "permission_denied"
    case trustBundle = "trust_bundle"
  }

  package let code: Code
  package let message: String
  package let remedy: String?
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, remedy: String? = nil, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.remedy = remedy
    self.cause = cause
  }

  package var description: String { self.failureText }
}
