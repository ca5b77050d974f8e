import GRPCCore

/// `FetchSecrets` asked for `file-cert:` or `file-root:` names whose files cannot be served now
/// (missing, refused, bad): UNAVAILABLE with each one's reason, since files may yet appear.
public struct FileSecretsUnavailable: AgentFailure, RPCErrorConvertible {
  public enum Code: String, Sendable {
    case filesUnavailable = "files_unavailable"
  }

  /// Each name's failure, its cause.
  public let failures: [String: FileSecretError]

  public init(_ failures: [String: FileSecretError]) {
    self.failures = failures
  }

  public var code: Code { .filesUnavailable }
  public var message: String { self.rpcErrorMessage }
  public var description: String { self.message }

  public var rpcErrorCode: RPCError.Code { .unavailable }

  public var rpcErrorMessage: String {
    let shown = self.failures.sorted { $0.key < $1.key }.prefix(SDSRequestError.namesShown)
    let reasons = shown.map { "\"\(BoundedText($0.key))\": \($0.value.description)" }.joined(separator: "; ")
    let more = self.failures.count - shown.count
    return "the files cannot be served now: " + reasons + (more > 0 ? " and \(more) more" : "")
  }
}
