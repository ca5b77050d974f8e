import GRPCCore
import SDSAgentCore

/// A protocol violation by the client, ending its RPC with `status`.
package struct GRPCStatusError: AgentFailure, Sendable {
  package enum Code: String, Sendable {
    /// A message flagged compressed although no `grpc-encoding` was negotiated: INTERNAL.
    case compressedMessage = "compressed_message"
    /// A message prefix whose flag is neither 0 nor 1: INTERNAL.
    case invalidPrefix = "invalid_prefix"
    /// A message longer than the socket accepts: RESOURCE_EXHAUSTED.
    case messageTooLarge = "message_too_large"
  }

  package let code: Code
  package let message: String

  init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The status the RPC ends with.
  package var status: GRPCStatus {
    switch self.code {
    case .compressedMessage, .invalidPrefix: GRPCStatus(code: .internalError, message: self.message)
    case .messageTooLarge: GRPCStatus(code: .resourceExhausted, message: self.message)
    }
  }

  package var description: String { "\(self.code.rawValue): \(self.message)" }
}
