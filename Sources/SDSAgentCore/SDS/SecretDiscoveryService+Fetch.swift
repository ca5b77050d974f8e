import EnvoySDSProtos
import GRPCCore

/// `FetchSecrets` as a call like the streams: one request, then, once the client half-closed,
/// one answer: at once, or made off the transport's event loop when it reads files first.
extension SecretDiscoveryService {
  package typealias FetchCall = SecretStream<
    Envoy_Service_Discovery_V3_DiscoveryRequest, Envoy_Service_Discovery_V3_DiscoveryResponse
  >

  /// A `FetchSecrets` call for a leased caller; the lease is released by its answer or its close.
  package func openFetchSecrets(_ lease: SecretLease) -> FetchCall {
    var state = FetchState(lease: lease)
    return SecretStream(
      cache: nil, logger: self.logger, handle: { event in try self.handle(event, in: &state) },
      close: {
        state.lease?.release()
        state.lease = nil
      })
  }

  struct FetchState {
    var lease: SecretLease?
    var request: Envoy_Service_Discovery_V3_DiscoveryRequest?
    var messages = 0
  }

  private func handle(_ event: FetchCall.Event, in state: inout FetchState) throws -> FetchCall.Step {
    let exactlyOne = RPCError(code: .internalError, message: "FetchSecrets takes exactly one request message")
    switch event {
    case .request(let request):
      state.messages += 1
      guard state.messages == 1 else { throw exactlyOne }
      state.request = request
      return .wait
    case .requestFailed(let error):
      state.messages += 1
      guard state.messages == 1 else { throw exactlyOne }
      throw error
    case .secretsChanged:
      return .wait
    case .requestsEnded:
      guard let request = state.request, let lease = state.lease else { throw exactlyOne }
      state.lease = nil
      let fetch: PendingFetch
      do {
        fetch = try self.startFetch(request, lease: lease)
      } catch {
        lease.release()
        throw error
      }
      // Without files to read, the answer is made at once, on the transport's event loop.
      guard !fetch.filesToRead.isEmpty else {
        defer { lease.release() }
        return .sendAndEnd(try self.answer(fetch, lease: lease))
      }
      return .later { () async throws(RPCError) -> FetchCall.Step in
        defer { lease.release() }
        do {
          try await self.readFiles(of: fetch)
          return .sendAndEnd(try self.answer(fetch, lease: lease))
        } catch {
          throw RPCError(ending: error)
        }
      }
    }
  }
}
