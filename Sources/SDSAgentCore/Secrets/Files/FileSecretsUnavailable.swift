import GRPCCore

/// `FetchSecrets` asked for `file-cert:` or `file-root:` names whose files cannot be served now
/// (missing, refused, bad): UNAVAILABLE with each one's reason, since files may yet appear.
public struct FileSecretsUnavailable: Error, Sendable, RPCErrorConvertible {
  public let failures: [String: FileSecretError]

  public init(_ failures: [String: FileSecretError]) {
    self.failures = failures
  }

  public var rpcErrorCode: RPCError.Code { .unavailable }

  public var rpcErrorMessage: String {
    let shown = self.failures.sorted { $0.key < $1.key }.prefix(SDSRequestError.namesShown)
    let reasons = shown.map { "\"\(BoundedText($0.key))\": \($0.value.description)" }.joined(separator: "; ")
    let more = self.failures.count - shown.count
    return "the files cannot be served now: " + reasons + (more > 0 ? " and \(more) more" : "")
  }
}
