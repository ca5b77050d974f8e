import GRPCCore

/// `FetchSecrets` asked for `file-cert:` or `file-root:` names whose files cannot be served now
/// (missing, refused, bad): UNAVAILABLE with each one's reason, since files may yet appear.
package struct FileSecretsUnavailable: AgentFailure, RPCErrorConvertible {
  package enum Code: String, Sendable {
    case filesUnavailable = "files_unavailable"
  }

  /// Each name's failure, its cause.
  package let failures: [String: FileSecretError]

  package init(_ failures: [String: FileSecretError]) {
    self.failures = failures
  }

  package var code: Code { .filesUnavailable }
  package var message: String { self.rpcErrorMessage }
  package var description: String { self.message }

  package var rpcErrorCode: RPCError.Code { .unavailable }

  package var rpcErrorMessage: String {
    let shown = self.failures.sorted { $0.key < $1.key }.prefix(SDSRequestError.namesShown)
    let reasons = shown.map { "\"\(BoundedText($0.key))\": \($0.value.description)" }.joined(separator: "; ")
    let more = self.failures.count - shown.count
    return "the files cannot be served now: " + reasons + (more > 0 ? " and \(more) more" : "")
  }
}
