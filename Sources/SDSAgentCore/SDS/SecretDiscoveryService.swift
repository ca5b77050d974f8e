import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import ServiceLifecycle

/// Envoy's `SecretDiscoveryService` (SotW `StreamSecrets` and `FetchSecrets`): each RPC's caller
/// is identified by the `WorkloadRegistry` and served from its identity's `SecretCache`.
/// Transport-agnostic: the same service runs over a Unix socket or in-process; the transport
/// hands the caller's evidence over in `ServerContext.transportSpecific`.
public struct SecretDiscoveryService: Envoy_Service_Secret_V3_SecretDiscoveryService.SimpleServiceProtocol {
  private let workloads: WorkloadRegistry
  private let counters: AgentCounters
  private let registry: StreamRegistry
  private let logger: Logger
  private let now: @Sendable () -> Date

  public init(
    workloads: WorkloadRegistry,
    counters: AgentCounters,
    registry: StreamRegistry = StreamRegistry(),
    logger: Logger,
    now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.workloads = workloads
    self.counters = counters
    self.registry = registry
    self.logger = logger
    self.now = now
  }

  private enum StreamEvent: Sendable {
    case request(Envoy_Service_Discovery_V3_DiscoveryRequest)
    case secretsChanged
    case requestsEnded
  }

  public func streamSecrets(
    request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
    response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
    context: ServerContext
  ) async throws {
    let lease = try await self.lease(context)
    defer { lease.release() }
    self.counters.increment(.streamsOpened)
    let streamID = self.registry.open(at: self.now())
    defer {
      self.registry.close(streamID)
      self.counters.increment(.streamsClosed)
    }
    self.registry.update(streamID) { $0.identity = lease.caller.identity.description }
    var logger = self.logger
    logger[metadataKey: "rpc"] = "StreamSecrets"
    logger[metadataKey: "stream"] = "\(streamID)"
    logger[metadataKey: "identity"] = "\(lease.caller.identity)"

    let (events, continuation) = AsyncStream.makeStream(of: StreamEvent.self)
    let changes = lease.cache.changes()
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { [logger] in
        defer { continuation.finish() }
        do {
          for try await message in request {
            continuation.yield(.request(message))
          }
        } catch {
          // The client reset the stream or went away; there is nobody left to answer.
          logger.debug("SDS stream closed by the client", metadata: ["reason": "\(error)"])
        }
        continuation.yield(.requestsEnded)
      }
      group.addTask {
        for await _ in changes {
          continuation.yield(.secretsChanged)
        }
      }
      defer { group.cancelAll() }

      var machine = SDSStreamStateMachine(naming: lease.naming)
      // On graceful shutdown the stream ends cleanly so the server can stop; Envoy reconnects
      // to the next agent and keeps its current secrets meanwhile.
      try await withGracefulShutdownHandler {
        loop: for await event in events {
          let served = lease.cache.current.servable(at: self.now())
          let plan: SDSResponsePlan?
          switch event {
          case .requestsEnded:
            break loop
          case .secretsChanged:
            plan = machine.secretsChanged(served)
          case .request(let message):
            if message.hasNode, !message.node.id.isEmpty {
              logger[metadataKey: "node"] = "\(message.node.id)"
              self.registry.update(streamID) { $0.nodeID = message.node.id }
            }
            plan = try self.receive(message, into: &machine, served: served, logger: logger, streamID: streamID)
          }
          if let plan {
            try await self.send(plan, from: served, on: response, logger: logger)
            self.registry.update(streamID) { $0.lastSentVersion = plan.versionInfo }
          }
        }
      } onGracefulShutdown: {
        continuation.finish()
      }
    }
  }

  public func fetchSecrets(
    request: Envoy_Service_Discovery_V3_DiscoveryRequest,
    context: ServerContext
  ) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
    let lease = try await self.lease(context)
    defer { lease.release() }
    self.counters.increment(.fetches)
    var machine = SDSStreamStateMachine(naming: lease.naming)
    let served = lease.cache.current.servable(at: self.now())
    let outcome: SDSStreamStateMachine.Outcome
    do {
      outcome = try machine.receive(SDSRequest(request), served: served)
    } catch {
      self.reject(error, logger: self.logger)
      throw RPCError(error)
    }
    guard let plan = outcome.response else {
      throw RPCError(
        code: .unavailable,
        message: "no valid certificate is available yet for \(machine.subscribedResources.map(\.name)); retry shortly"
      )
    }
    self.counters.increment(.responsesSent)
    return try Envoy_Service_Discovery_V3_DiscoveryResponse(plan, from: served)
  }

  public func deltaSecrets(
    request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
    response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
    context: ServerContext
  ) async throws {
    throw RPCError(
      code: .unimplemented,
      message: "DeltaSecrets is not supported; configure Envoy's sds_config with api_type GRPC (state of the world)"
    )
  }

  private func lease(_ context: ServerContext) async throws -> SecretLease {
    do {
      return try await self.workloads.lease(for: context.transportSpecific as? CallerEvidence)
    } catch {
      throw RPCError(error)
    }
  }

  private func receive(
    _ message: Envoy_Service_Discovery_V3_DiscoveryRequest,
    into machine: inout SDSStreamStateMachine,
    served: ServedSecrets,
    logger: Logger,
    streamID: UInt64
  ) throws -> SDSResponsePlan? {
    let outcome: SDSStreamStateMachine.Outcome
    do {
      outcome = try machine.receive(SDSRequest(message), served: served)
    } catch {
      self.reject(error, logger: logger)
      throw RPCError(error)
    }
    self.registry.update(streamID) { $0.resources = machine.subscribedResources.map(\.name) }
    switch outcome.feedback {
    case .ack(let version):
      self.registry.update(streamID) { $0.lastAckedVersion = version }
      self.counters.increment(.acks)
      logger.debug("SDS response acknowledged", metadata: ["version": "\(version)"])
    case .nack(let version, let nonce, let message):
      self.registry.update(streamID) {
        $0.lastNackedNonce = nonce
        $0.lastNackMessage = message
      }
      self.counters.increment(.nacks, labels: [("reason", String(message.prefix(80)))])
      logger.warning(
        "Envoy rejected an SDS response",
        metadata: ["nonce": "\(nonce)", "kept_version": "\(version)", "envoy_error": "\(message)"]
      )
    case .stale(let nonce):
      self.counters.increment(.staleRequests)
      logger.debug("ignoring a request with a stale nonce", metadata: ["nonce": "\(nonce)"])
    case .initial:
      logger.debug(
        "SDS stream subscribed",
        metadata: ["resources": "\(machine.subscribedResources.map(\.name))"]
      )
    case nil:
      break
    }
    return outcome.response
  }

  private func send(
    _ plan: SDSResponsePlan,
    from served: ServedSecrets,
    on writer: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
    logger: Logger
  ) async throws {
    let message = try Envoy_Service_Discovery_V3_DiscoveryResponse(plan, from: served)
    try await writer.write(message)
    self.counters.increment(.responsesSent)
    logger.debug(
      "sent SDS response",
      metadata: [
        "resources": "\(plan.resources.map(\.name))", "version": "\(plan.versionInfo)", "nonce": "\(plan.nonce)",
      ]
    )
  }

  private func reject(_ error: SDSRequestError, logger: Logger) {
    self.counters.increment(.rejectedRequests)
    logger.warning("refused an SDS request", metadata: ["reason": "\(error.message)"])
  }
}

extension RPCError {
  init(_ error: SDSRequestError) {
    switch error.code {
    case .unknownResource:
      self.init(code: .notFound, message: error.message)
    case .unsupportedType, .invalidName:
      self.init(code: .invalidArgument, message: error.message)
    case .forbiddenName:
      self.init(code: .permissionDenied, message: error.message)
    }
  }

  init(_ refusal: CallerRefusal) {
    switch refusal.code {
    case .unauthenticated: self.init(code: .unauthenticated, message: refusal.message)
    case .permissionDenied: self.init(code: .permissionDenied, message: refusal.message)
    case .rateLimited: self.init(code: .resourceExhausted, message: refusal.message)
    case .unavailable: self.init(code: .unavailable, message: refusal.message)
    }
  }
}
