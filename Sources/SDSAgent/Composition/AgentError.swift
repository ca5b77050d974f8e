import SDSAgentCore

/// A failure at the agent's edges (files, sockets), saying what happened, what to do and what
/// caused it.
public struct AgentError: AgentFailure {
  public enum Code: String, Sendable {
    case socketInUse = "socket_in_use"
    case socketPath = "socket_path"
    case socketSetup = "socket_setup"
    case stateDirectory = "state_directory"
    case caFiles = "ca_files"
    case connection = "connection"
    case permissionDenied = "permission_denied"
    case trustBundle = "trust_bundle"
  }

  public let code: Code
  public let message: String
  public let remedy: String?
  public let cause: (any Error)?

  public init(_ code: Code, _ message: String, remedy: String? = nil, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.remedy = remedy
    self.cause = cause
  }

  public var description: String { self.failureText }
}
