import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SwiftProtobuf

/// `DeltaSecrets`: the incremental protocol, serving every name `StreamSecrets` serves.
extension SecretDiscoveryService {
  /// A `DeltaSecrets` stream for a leased caller.
  package func openDeltaSecrets(
    _ lease: SecretLease
  ) -> SecretStream<
    Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, Envoy_Service_Discovery_V3_DeltaDiscoveryResponse
  > {
    self.openStream(
      lease, machine: DeltaStreamStateMachine(naming: self.naming(lease, onDemand: true)), rpc: .deltaSecrets
    ) { service, event, session in try service.handle(event, in: &session) }
  }

  @inline(never)
  private func handle(
    _ event: StreamEvent<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>,
    in session: inout Session<DeltaStreamStateMachine>
  ) throws -> Step<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse> {
    let served = self.servable(session.cache, noticing: session.noticeExpired)
    let plan: DeltaResponsePlan?
    switch event {
    case .requestsEnded:
      return .end
    case .requestFailed(let error):
      throw self.refuseUndecodable(error, in: session)
    case .secretsChanged:
      self.readmitOnDemand(in: &session, served: served)
      plan = session.machine.secretsChanged(served)
    case .request(let message):
      self.noteNode(message.hasNode ? message.node.id : nil, in: &session)
      plan = try self.receive(DeltaRequest(message), in: &session, served: served)
    }
    guard let plan else { return .wait }
    let response = try Envoy_Service_Discovery_V3_DeltaDiscoveryResponse(plan, from: served, cache: session.cache)
    let sentBundle = plan.trustBundle
    let names = session.machine.subscribed.map(\.name)
    self.registry.update(session.streamID) {
      $0.resources = names
      $0.lastSentVersion = plan.resources.map { "\($0.secret.name)=\($0.version)" }.joined(separator: ",")
      // A delta response carries only what changed: a stream keeps holding the bundle it was sent.
      if let sentBundle { $0.sentTrustBundle = sentBundle }
    }
    self.counters.increment(.responsesSent)
    session.debug(
      "sending SDS delta response",
      metadata: [
        "resources": "\(plan.resources.map { "\($0.secret.name)@\($0.version)" })", "removed": "\(plan.removed)",
        "nonce": "\(plan.nonce)",
      ])
    return .send(response)
  }

  private func receive(
    _ request: DeltaRequest, in session: inout Session<DeltaStreamStateMachine>, served: ServedSecrets
  ) throws -> DeltaResponsePlan? {
    let outcome: DeltaStreamStateMachine.Outcome
    var request = request
    if let onDemand = self.onDemand, session.machine.naming.onDemand {
      self.readmitOnDemand(in: &session, served: served)
      session.onDemand.admit(request.subscribe, by: onDemand)
      request.refused = session.onDemand.unserved
    }
    do {
      outcome = try session.machine.receive(request, served: served)
    } catch {
      throw self.reject(error, caller: session.caller, logger: session.logger)
    }
    if let onDemand = self.onDemand {
      session.onDemand.keep(only: session.machine.subscribed, by: onDemand)
    }
    let streamID = session.streamID
    do {
      _ = try self.holdOnTheFly(
        session.machine.subscribed.map(\.name), naming: session.machine.naming, holder: streamID)
      try self.holdJWTSVIDs(session.machine.subscribed, in: session)
    } catch {
      throw self.reject(error, caller: session.caller, logger: session.logger)
    }
    let names = session.machine.subscribed.map(\.name)
    self.registry.update(streamID) { $0.resources = names }
    switch outcome.feedback {
    case .ack(let nonce):
      // Only the bundle of the response acknowledged counts (a root rotation's switch waits
      // for it), not the last one sent.
      let bundle = outcome.acknowledgedTrustBundle
      let version = "nonce \(BoundedText(nonce, limit: NackReason.keptLength))"
      self.registry.update(streamID) {
        $0.lastAckedVersion = version
        if let bundle { $0.acknowledgedTrustBundle = bundle }
      }
      if bundle != nil { self.registry.trustBundleAcknowledged.signal() }
      self.counters.increment(.acks)
      session.debug("SDS delta response acknowledged", metadata: ["nonce": "\(BoundedText(nonce))"])
    case .nack(let nonce, let message):
      self.recordNack(nonce: nonce, message: message, keptVersion: nil, streamID: streamID, logger: session.logger)
    case .stale(let nonce):
      self.counters.increment(.staleRequests)
      session.debug("ignoring a request with an unknown nonce", metadata: ["nonce": "\(BoundedText(nonce))"])
    case .initial:
      session.debug("SDS delta stream subscribed", metadata: ["resources": "\(names)"])
    case nil:
      break
    }
    return outcome.response
  }
}

extension SecretDiscoveryService {
  /// Takes the on-demand names the stream waited for (refused over the cap or the rate) that
  /// are minted now, and serves them on the stream.
  func readmitOnDemand(in session: inout Session<DeltaStreamStateMachine>, served: ServedSecrets) {
    guard let onDemand = self.onDemand, session.machine.naming.onDemand else { return }
    session.machine.admitted(session.onDemand.readmit(from: served, by: onDemand))
  }
}

extension Envoy_Service_Discovery_V3_DeltaDiscoveryResponse {
  /// The response `plan` describes, with the secrets from `served`, encoded once per revision
  /// in `cache`.
  init(_ plan: DeltaResponsePlan, from served: ServedSecrets, cache: SecretCache) throws {
    self.init()
    self.typeURL = SecretResource.typeURL
    self.nonce = plan.nonce
    self.removedResources = plan.removed
    self.resources = try plan.resources.compactMap { item -> Envoy_Service_Discovery_V3_Resource? in
      guard let secret = try Google_Protobuf_Any(item.secret, from: served, cache: cache) else { return nil }
      var resource = Envoy_Service_Discovery_V3_Resource()
      resource.name = item.secret.name
      resource.version = item.version
      resource.resource = secret
      return resource
    }
  }
}

extension DeltaRequest {
  package init(_ request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) {
    self.init(
      typeURL: request.typeURL,
      subscribe: request.resourceNamesSubscribe,
      unsubscribe: request.resourceNamesUnsubscribe,
      initialVersions: request.initialResourceVersions,
      responseNonce: request.responseNonce,
      errorDetail: request.hasErrorDetail
        ? SDSRequest.ErrorDetail(code: request.errorDetail.code, message: request.errorDetail.message) : nil,
      nodeID: request.hasNode ? request.node.id : nil,
      disablesSPIFFEValidator: request.node.disablesSPIFFEValidator
    )
  }
}
