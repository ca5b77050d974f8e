import GRPCCore

/// A protocol violation by the client, ending its RPC with this status.
public struct GRPCStatusError: Error, Sendable {
  public let status: GRPCStatus

  init(_ code: Status.Code, _ message: String) {
    self.status = GRPCStatus(code: code, message: message)
  }
}
