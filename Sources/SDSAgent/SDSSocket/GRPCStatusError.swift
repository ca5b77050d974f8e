import GRPCCore

/// A protocol violation by the client, ending its RPC with this status.
package struct GRPCStatusError: Error, Sendable {
  package let status: GRPCStatus

  init(_ code: Status.Code, _ message: String) {
    self.status = GRPCStatus(code: code, message: message)
  }
}
