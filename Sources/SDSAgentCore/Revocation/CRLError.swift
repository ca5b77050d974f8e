/// A CRL that cannot be read, or could not be signed; says why.
package struct CRLError: AgentFailure {
  package enum Code: String, Sendable {
    case unparsable
    case signing
  }

  package let code: Code
  package let message: String
  package let cause: (any Error)?

  init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
  }

  package var description: String { self.failureText }
}
