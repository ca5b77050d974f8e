/// A failure at the agent's edges (files, sockets), saying what happened and what to do.
public struct AgentError: Error, CustomStringConvertible {
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

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { self.message }
}
