import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging

/// Envoy's `SecretDiscoveryService` (SotW `StreamSecrets` and `FetchSecrets`; `DeltaSecrets` in
/// its own file): each RPC's caller is admitted by a `SecretLeaseProvider` and served from its
/// identity's `SecretCache`. Transport-agnostic: a transport (the SDS socket's own HTTP/2 path)
/// opens a `SecretStream` per call (`FetchSecrets` too) and feeds it `StreamEvent`s, answered
/// with `Step`s.
package struct SecretDiscoveryService: Sendable {
  let leases: any SecretLeaseProvider
  let counters: AgentCounters
  let registry: StreamRegistry
  let logger: Logger
  let now: @Sendable () -> Date
  /// Whether trust-domain bundles go to Envoy's SPIFFE certificate validator (unless a node's
  /// metadata turns it off) or as plain `trusted_ca`.
  let spiffeValidator: Bool
  /// Mints server certificates for DNS names streams ask for, if configured.
  let onDemand: (any OnDemandAdmission)?
  /// Secrets read from files, if any are configured.
  let files: (any FileSecretProvider)?
  /// Signs and renews `jwt-svid:<audience>` tokens, where the agent signs JWT-SVIDs.
  let jwtSVIDs: (any JWTSVIDProvider)?
  /// Session ticket keys derived from seeds, if any are configured.
  var sessionTicketKeys: (any SessionTicketKeyProvider)?

  package init(
    leases: any SecretLeaseProvider,
    counters: AgentCounters,
    registry: StreamRegistry = StreamRegistry(),
    logger: Logger,
    spiffeValidator: Bool = true,
    onDemand: (any OnDemandAdmission)? = nil,
    files: (any FileSecretProvider)? = nil,
    jwtSVIDs: (any JWTSVIDProvider)? = nil,
    now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.files = files
    self.jwtSVIDs = jwtSVIDs
    self.spiffeValidator = spiffeValidator
    self.onDemand = onDemand
    self.leases = leases
    self.counters = counters
    self.registry = registry
    self.logger = logger
    self.now = now
  }

  package enum StreamEvent<Request: Sendable>: Sendable {
    case request(Request)
    /// A request that does not decode: the stream ends with this error.
    case requestFailed(RPCError)
    case secretsChanged
    case requestsEnded
  }

  /// What a call does after an event: the one action type between a transport and the service.
  package enum Step<Response: Sendable>: Sendable {
    case send(Response)
    case wait
    /// The call ends with OK.
    case end
    /// A unary call's one answer, then its end.
    case sendAndEnd(Response)
    /// The answer is made off the transport's event loop, then performed on it.
    case later(@Sendable () async throws(RPCError) -> Step)
  }

  /// A `StreamSecrets` stream for a leased caller.
  package func openStreamSecrets(
    _ lease: SecretLease
  ) -> SecretStream<Envoy_Service_Discovery_V3_DiscoveryRequest, StreamedDiscoveryResponse> {
    self.openStream(
      lease, machine: SDSStreamStateMachine(naming: self.naming(lease, onDemand: true)), rpc: .streamSecrets,
      affected: { session, changes in session.machine.isAffected(by: changes) }
    ) { service, event, session in try service.handle(event, in: &session) }
  }

  /// A stream of `rpc` for a leased caller, registered until it is closed. `handle` captures
  /// nothing: the stream's one object holds the service and the session.
  /// `affected`: whether a change of the followed secrets concerns the stream (without it, every
  /// change does); handed the session in place, as copying it would retain each of its parts.
  func openStream<Machine, Request, Response>(
    _ lease: SecretLease, machine: Machine, rpc: StreamRegistry.Method,
    affected: ((inout Session<Machine>, SecretChanges) -> Bool)? = nil,
    handle: @escaping (SecretDiscoveryService, StreamEvent<Request>, inout Session<Machine>) throws -> Step<Response>
  ) -> SecretStream<Request, Response> {
    let open = OpenStream(service: self, session: self.open(lease, machine: machine, rpc: rpc), lease: lease)
    return SecretStream(
      cache: lease.cache, logger: self.logger, handle: { try handle(open.service, $0, &open.session) },
      affected: affected.map { affected in { affected(&open.session, $0) } }, close: { open.close() })
  }

  func open<Machine>(_ lease: SecretLease, machine: Machine, rpc: StreamRegistry.Method) -> Session<Machine> {
    self.counters.increment(.streamsOpened)
    let streamID = self.registry.open(at: self.now(), method: rpc)
    self.registry.update(streamID) { $0.identity = lease.caller.identity.description }
    return Session(
      machine: machine, streamID: streamID, rpc: rpc, serviceLogger: self.logger, cache: lease.cache,
      caller: lease.caller, noticeExpired: lease.noticeExpired)
  }

  func close<Machine>(_ session: Session<Machine>) {
    if let onDemand = self.onDemand { session.onDemand.releaseAll(by: onDemand) }
    self.files?.release(session.streamID)
    self.jwtSVIDs?.release(session.streamID)
    self.registry.close(session.streamID)
    self.counters.increment(.streamsClosed)
  }

  /// Records the node a stream's first request names.
  func noteNode<Machine>(_ node: String?, in session: inout Session<Machine>) {
    guard session.nodeID == nil, let node, !node.isEmpty else { return }
    let nodeID = BoundedText(node).description
    session.nodeID = nodeID
    self.registry.update(session.streamID) { $0.nodeID = nodeID }
  }

  /// Counts, logs and ends the stream on a request that does not decode.
  func refuseUndecodable<Machine>(_ error: RPCError, in session: Session<Machine>) -> RPCError {
    self.counters.increment(.rejectedRequests)
    session.logger.warning(
      "refused an SDS request that does not decode",
      metadata: ["status": "\(error.code)", "reason": "\(BoundedText(error.message))", "caller": "\(session.caller)"])
    return error
  }

  @inline(never)
  private func handle(
    _ event: StreamEvent<Envoy_Service_Discovery_V3_DiscoveryRequest>, in session: inout Session<SDSStreamStateMachine>
  ) throws -> Step<StreamedDiscoveryResponse> {
    let served = self.servable(session.cache, noticing: session.noticeExpired)
    let plan: SDSResponsePlan?
    switch event {
    case .requestsEnded:
      return .end
    case .requestFailed(let error):
      throw self.refuseUndecodable(error, in: session)
    case .secretsChanged:
      plan = session.machine.secretsChanged(served)
    case .request(let message):
      self.noteNode(message.hasNode ? message.node.id : nil, in: &session)
      plan = try self.receive(message, in: &session, served: served)
    }
    guard let plan else { return .wait }
    let response = try StreamedDiscoveryResponse(plan, from: served, cache: session.cache)
    let ownDomain = TrustDomainName(of: session.caller.identity)
    let sentBundle = plan.resources.contains { $0.resource.carriesBundle(of: ownDomain) } ? served.trustBundle : nil
    self.registry.update(session.streamID) {
      $0.lastSentVersion = plan.versionInfo
      $0.sentTrustBundle = sentBundle
    }
    self.counters.increment(.responsesSent)
    session.debug(
      "sending SDS response",
      metadata: [
        "resources": "\(plan.resources.map(\.name))", "version": "\(plan.versionInfo)", "nonce": "\(plan.nonce)",
      ]
    )
    return .send(response)
  }

  /// What `cache` may serve now: never a certificate past its `notAfter` by the wall clock, nor a
  /// JWT-SVID past its `exp`. One found expired (the wall clock jumped) is renewed at once.
  func servable(_ cache: SecretCache, noticing expired: () -> Void) -> ServedSecrets {
    let current = cache.current
    let now = self.now()
    if current.svidExpired(at: now) { expired() }
    let servable = current.servable(at: now)
    if current.jwtSVIDs.count != servable.jwtSVIDs.count { self.jwtSVIDs?.noticeExpired() }
    return servable
  }

  /// `onDemand`: a stream, which may ask for on-demand names; `FetchSecrets` may not.
  func naming(_ lease: SecretLease, onDemand: Bool = false) -> SecretNaming {
    let access = self.files?.access(for: lease.caller.identity) ?? FileSecretAccess()
    let onDemandAllowed = self.onDemand?.allows(caller: lease.caller.identity)
    var naming = SecretNaming(
      identity: lease.caller.identity, spiffeValidator: self.spiffeValidator,
      onDemand: onDemand && onDemandAllowed == true, files: access.allowed, withheldFiles: access.withheld,
      onTheFlyFiles: access.onTheFly)
    naming.onDemandWithheld = onDemand && onDemandAllowed == false
    naming.jwtSVIDs = self.jwtSVIDNames(onStream: onDemand)
    naming.sessionTicketKeys = self.sessionTicketKeys?.access(for: lease.caller.identity) ?? SessionTicketKeyAccess()
    return naming
  }

  /// Follows the `file-cert:` and `file-root:` names among `names` (a stream's subscriptions or a
  /// bounded request; those the caller may not have are refused when the names are resolved)
  /// for the stream `holder`, in place of the
  /// ones it followed; without a holder (`FetchSecrets`), only for the caller's bound. Returns
  /// the names held, for a `FetchSecrets` to read at once. Refuses names over the caller's bound.
  func holdOnTheFly(
    _ names: [String], naming: SecretNaming, holder: UInt64?
  ) throws(SDSRequestError) -> [OnTheFlyFileSecret] {
    guard let files = self.files else { return [] }
    let secrets = names.filter(OnTheFlyFileSecret.isOnTheFly).compactMap { name -> OnTheFlyFileSecret? in
      guard name.utf8.count <= SDSRequest.maximumNameLength else { return nil }
      return try? naming.onTheFlyFiles.admit(name, for: naming.identity)
    }
    guard !secrets.isEmpty || holder != nil else { return [] }
    let refused = files.hold(secrets, by: holder, caller: naming.identity)
    guard refused.isEmpty else {
      throw .tooManyFileNames(refused, caller: naming.identity, limit: OnTheFlyFileTable.defaultMaximumPerCaller)
    }
    return secrets
  }

  /// Who admits each caller: the SDS socket leases for every service it serves.
  package var callers: any SecretLeaseProvider { self.leases }

  /// Admits the caller `evidence` describes, waiting for its first certificate if need be.
  package func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
    try await self.leases.lease(for: evidence)
  }

  /// Admits the caller without waiting, when that is possible; nil when only `lease(for:)` can.
  package func leaseNow(for evidence: CallerEvidence?) throws(CallerRefusal) -> SecretLease? {
    try self.leases.leaseNow(for: evidence)
  }

  private func receive(
    _ message: Envoy_Service_Discovery_V3_DiscoveryRequest,
    in session: inout Session<SDSStreamStateMachine>,
    served: ServedSecrets
  ) throws -> SDSResponsePlan? {
    let outcome: SDSStreamStateMachine.Outcome
    let streamID = session.streamID
    var request = SDSRequest(message)
    if let onDemand = self.onDemand, session.machine.naming.onDemand {
      _ = session.onDemand.readmit(from: served, by: onDemand)
      session.onDemand.admit(request.resourceNames, by: onDemand)
      request.refused = session.onDemand.unserved
    }
    do {
      outcome = try session.machine.receive(request, served: served)
    } catch {
      throw self.reject(error, caller: session.caller, logger: session.logger)
    }
    if let onDemand = self.onDemand {
      session.onDemand.keep(only: session.machine.subscribedResources, by: onDemand)
    }
    do {
      _ = try self.holdOnTheFly(
        session.machine.subscribedResources.map(\.name), naming: session.machine.naming, holder: streamID)
      try self.holdJWTSVIDs(session.machine.subscribedResources, in: session)
    } catch {
      throw self.reject(error, caller: session.caller, logger: session.logger)
    }
    let machine = session.machine
    self.registry.update(streamID) { $0.resources = machine.subscribedResources.map(\.name) }
    switch outcome.feedback {
    case .ack(let version):
      let version = BoundedText(version).description
      self.registry.acknowledged(streamID, version: version)
      self.counters.increment(.acks)
      session.debug("SDS response acknowledged", metadata: ["version": "\(version)"])
    case .nack(let version, let nonce, let message):
      self.recordNack(
        nonce: nonce, message: message, keptVersion: version, streamID: streamID, logger: session.logger)
    case .stale(let nonce):
      self.counters.increment(.staleRequests)
      session.debug("ignoring a request with a stale nonce", metadata: ["nonce": "\(BoundedText(nonce))"])
    case .initial:
      session.debug(
        "SDS stream subscribed",
        metadata: ["resources": "\(machine.subscribedResources.map(\.name))"]
      )
    case nil:
      break
    }
    return outcome.response
  }

  /// Records, counts and logs a rejected response; Envoy's message only bounded, and counted by a
  /// fixed set of reasons.
  func recordNack(nonce: String, message: String, keptVersion: String?, streamID: UInt64, logger: Logger) {
    let kept = BoundedText(message, limit: NackReason.keptLength).description
    self.registry.update(streamID) {
      $0.lastNackedNonce = String(nonce.prefix(NackReason.keptLength))
      $0.lastNackMessage = kept
    }
    self.counters.increment(.nacks, labels: [("reason", NackReason(envoyMessage: message).rawValue)])
    var metadata: Logger.Metadata = ["nonce": "\(BoundedText(nonce))", "envoy_error": "\(kept)"]
    if let keptVersion { metadata["kept_version"] = "\(BoundedText(keptVersion))" }
    logger.warning("Envoy rejected an SDS response", metadata: metadata)
  }

  /// Counts and logs a request the agent will not answer; a request for another workload's
  /// secrets is also a refused caller.
  func reject(_ error: SDSRequestError, caller: Caller, logger: Logger) -> SDSRequestError {
    self.counters.increment(.rejectedRequests)
    if error.code == .forbiddenName {
      self.counters.increment(.callersRefused, labels: [("reason", CallerRefusal.Code.permissionDenied.rawValue)])
    }
    logger.warning(
      "refused an SDS request",
      metadata: ["status": "\(error.rpcErrorCode)", "reason": "\(error.message)", "caller": "\(caller)"])
    return error
  }
}
