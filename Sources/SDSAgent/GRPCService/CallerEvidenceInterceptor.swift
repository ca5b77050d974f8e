import GRPCCore
import SDSAgentCore

/// Hands each RPC's `CallerEvidence` (peer credentials set by `PeerCredentialsHandler`, and a
/// forwarded token) to the handler through `ServerContext.transportSpecific`.
public struct CallerEvidenceInterceptor: ServerInterceptor {
  public init() {}

  public func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    var context = context
    context.transportSpecific = CallerEvidence(metadata: request.metadata)
    return try await next(request, context)
  }
}
