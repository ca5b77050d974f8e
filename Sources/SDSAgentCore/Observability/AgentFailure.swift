/// The one shape of the agent's errors: which failure it is (`code`, a closed set that a caller
/// decides on and a metric counts), what failed (`message`, for a person), what to do about it
/// (`remedy`, when the failure knows) and the error underneath (`cause`), kept as a value, not
/// flattened into the message. `failureText` writes them as messages and log lines show them:
/// "message: cause; remedy".
package protocol AgentFailure: Error, CustomStringConvertible {
  associatedtype Code: RawRepresentable & Sendable where Code.RawValue == String

  var code: Code { get }
  /// What failed.
  var message: String { get }
  /// What to do about it.
  var remedy: String? { get }
  /// The error this one wraps: a file error, a parse error, a TLS failure.
  var cause: (any Error)? { get }
}

extension AgentFailure {
  package var remedy: String? { nil }
  package var cause: (any Error)? { nil }

  /// "message: cause; remedy", each part only when there is one.
  package var failureText: String {
    var text = self.message
    if let cause = self.cause { text += ": \(cause)" }
    if let remedy = self.remedy { text += "; \(remedy)" }
    return text
  }

  /// The causes underneath, the nearest first, as far as each one says what caused it.
  package var causes: [any Error] {
    var chain: [any Error] = []
    var next = self.cause
    while let error = next, chain.count < Self.maximumCauses {
      chain.append(error)
      next = (error as? any AgentFailure)?.cause
    }
    return chain
  }

  /// How deep `causes` looks.
  static var maximumCauses: Int { 16 }
}
