import GRPCCore
import SDSAgentCore

/// Hands each RPC's `CallerEvidence` (the token forwarded in its metadata; an in-process
/// transport has no peer credentials) to the handler through `ServerContext.transportSpecific`.
/// Only the grpc-swift conformance the in-process tests run uses it: the SDS socket reads the
/// kernel's peer credentials itself (`KernelPeerCredentials`).
package struct CallerEvidenceInterceptor: ServerInterceptor {
  package init() {}

  package func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    var context = context
    context.transportSpecific = CallerEvidence(metadata: request.metadata)
    return try await next(request, context)
  }
}
