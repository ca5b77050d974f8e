import EnvoySDSProtos
import GRPCCore

/// `FetchSecrets` as a call like the streams: one request, then, once the client half-closed,
/// one answer: at once, or made off the transport's event loop when it reads files first.
extension SecretDiscoveryService {
  package typealias FetchCall = SecretStream<Envoy_Service_Discovery_V3_DiscoveryRequest, StreamedDiscoveryResponse>

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

  /// `FetchSecrets` for a leased caller; releases the lease.
  package func fetch(
    _ request: Envoy_Service_Discovery_V3_DiscoveryRequest, lease: SecretLease
  ) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
    defer { lease.release() }
    let fetch = try self.startFetch(request, lease: lease)
    try await self.readFiles(of: fetch)
    return try self.answer(fetch, lease: lease).message()
  }

  /// A `FetchSecrets` request, checked, with the `file-cert:` and `file-root:` names it holds: a
  /// `FetchSecrets` answers at once, so those files are read before it is answered.
  struct PendingFetch {
    let request: SDSRequest
    let naming: SecretNaming
    let filesToRead: [OnTheFlyFileSecret]
  }

  func startFetch(
    _ request: Envoy_Service_Discovery_V3_DiscoveryRequest, lease: SecretLease
  ) throws(SDSRequestError) -> PendingFetch {
    self.counters.increment(.fetches)
    let naming = self.naming(lease)
    let request = SDSRequest(request)
    // Too many names is refused when they are resolved, without holding any.
    guard request.resourceNames.count <= SDSRequest.maximumResourceNames else {
      return PendingFetch(request: request, naming: naming, filesToRead: [])
    }
    do {
      let files = try self.holdOnTheFly(request.resourceNames, naming: naming, holder: nil)
      return PendingFetch(request: request, naming: naming, filesToRead: files)
    } catch {
      throw self.reject(error, caller: lease.caller, logger: self.logger)
    }
  }

  func readFiles(of fetch: PendingFetch) async throws(FileSecretsUnavailable) {
    guard !fetch.filesToRead.isEmpty, let files = self.files else { return }
    let failures = await files.readNow(fetch.filesToRead)
    if !failures.isEmpty { throw FileSecretsUnavailable(failures) }
  }

  /// The answer to `fetch` from the caller's secrets as they are now (its files already read).
  func answer(
    _ fetch: PendingFetch, lease: SecretLease
  ) throws -> StreamedDiscoveryResponse {
    var machine = SDSStreamStateMachine(naming: fetch.naming)
    let served = self.servable(lease.cache, noticing: lease.noticeExpired)
    let outcome: SDSStreamStateMachine.Outcome
    do {
      outcome = try machine.receive(fetch.request, served: served)
    } catch {
      throw self.reject(error, caller: lease.caller, logger: self.logger)
    }
    guard let plan = outcome.response else {
      throw SecretsNotReady(names: machine.subscribedResources.map(\.name))
    }
    self.counters.increment(.responsesSent)
    return try StreamedDiscoveryResponse(plan, from: served, cache: lease.cache)
  }
}
