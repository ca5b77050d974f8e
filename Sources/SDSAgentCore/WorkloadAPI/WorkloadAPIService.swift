import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging

/// The SPIFFE Workload API (`SpiffeWorkloadAPI`), served from the same identity table as SDS:
/// a leased caller's `FetchX509SVID` stream carries the certificate and key its identity serves
/// Envoy at that moment, its `FetchX509Bundles` stream every trust domain's roots; each is
/// pushed whole on every rotation, root change and federation change. The JWT profile is in
/// `WorkloadAPIService+JWT.swift`. Transport-agnostic like `SecretDiscoveryService`: a
/// transport opens a `SecretStream` per call and feeds it events.
package struct WorkloadAPIService: Sendable {
  package typealias X509SVIDCall = SecretStream<SpiffeWorkload_X509SVIDRequest, SpiffeWorkload_X509SVIDResponse>
  package typealias X509BundlesCall = SecretStream<
    SpiffeWorkload_X509BundlesRequest, SpiffeWorkload_X509BundlesResponse
  >

  let logger: Logger
  let now: @Sendable () -> Date
  /// Signs and validates JWT-SVIDs: the agent's own keys, or the CA's in fetch mode; nil where
  /// none sign.
  package let jwt: (any JWTSVIDSource)?
  let counters: AgentCounters
  /// Where its calls are listed while open (`/debug/streams`), if anywhere.
  let registry: StreamRegistry?
  /// Each identity's messages, built once per revision for all its streams.
  let x509SVIDs = WorkloadAPIMessages<SpiffeWorkload_X509SVIDResponse>()
  let x509Bundles = WorkloadAPIMessages<SpiffeWorkload_X509BundlesResponse>()

  package init(
    logger: Logger, counters: AgentCounters = AgentCounters(), jwt: (any JWTSVIDSource)? = nil,
    registry: StreamRegistry? = nil, now: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.registry = registry
    self.logger = logger
    self.counters = counters
    self.jwt = jwt
    self.now = now
  }

  /// Counts a call's outcome: `ok` at its first answer, else the code it was refused with.
  func count(_ rpc: String, _ outcome: String) {
    self.counters.increment(.workloadAPICalls, labels: [("method", rpc), ("outcome", outcome)])
  }

  /// A `FetchX509SVID` stream for a leased caller; the lease is released when it closes.
  package func openFetchX509SVID(_ lease: SecretLease) -> X509SVIDCall {
    self.open(lease, content: .x509SVID) { served throws(WorkloadAPIFailure) in
      guard let svid = served.svid, let trust = served.trust else {
        throw WorkloadAPIFailure(.notReady, "no valid X.509-SVID is available for the caller yet")
      }
      let revisions = WorkloadAPIStreamState.Content.x509SVID.revisions(of: served)
      return try self.x509SVIDs.message(for: lease.cache, at: revisions) { () throws(WorkloadAPIFailure) in
        try SpiffeWorkload_X509SVIDResponse(svid: svid, trust: trust)
      }
    }
  }

  /// A `FetchX509Bundles` stream for a leased caller; the lease is released when it closes.
  package func openFetchX509Bundles(_ lease: SecretLease) -> X509BundlesCall {
    self.open(lease, content: .x509Bundles) { served throws(WorkloadAPIFailure) in
      guard let trust = served.trust else {
        throw WorkloadAPIFailure(.notReady, "no trust bundle is available for the caller yet")
      }
      let revisions = WorkloadAPIStreamState.Content.x509Bundles.revisions(of: served)
      return try self.x509Bundles.message(for: lease.cache, at: revisions) { () throws(WorkloadAPIFailure) in
        try SpiffeWorkload_X509BundlesResponse(trust: trust)
      }
    }
  }

  private func open<Request: Sendable, Response: Sendable>(
    _ lease: SecretLease, content: WorkloadAPIStreamState.Content,
    response: @escaping (ServedSecrets) throws(WorkloadAPIFailure) -> Response
  ) -> SecretStream<Request, Response> {
    var state = WorkloadAPIStreamState(content)
    var answered = false
    var logger = self.logger
    logger[metadataKey: "rpc"] = "\(content.rawValue)"
    logger[metadataKey: "identity"] = "\(lease.caller.identity)"
    let now = self.now
    return SecretStream(
      cache: lease.cache, logger: logger,
      handle: { event throws(WorkloadAPIFailure) -> SecretDiscoveryService.Step<Response> in
        do throws(WorkloadAPIFailure) {
          let served = Self.servable(lease, at: now())
          let action: WorkloadAPIStreamState.Action
          switch event {
          case .request: action = try state.requestReceived(served)
          case .requestFailed(let error): throw WorkloadAPIFailure(.invalidRequest, error.message)
          case .secretsChanged: action = try state.secretsChanged(served)
          case .requestsEnded: action = try state.requestsEnded()
          }
          guard action == .send else { return .wait }
          logger.debug(
            "sending a Workload API response",
            metadata: ["serial": "\(served.svid?.leaf.serialHex ?? "-")", "revision": "\(served.svidRevision)"])
          let message = try response(served)
          if !answered { self.count(content.rawValue, "ok") }
          answered = true
          return .send(message)
        } catch {
          if !answered { self.count(content.rawValue, error.code.rawValue) }
          answered = true
          throw error
        }
      },
      close: { lease.release() })
  }

  /// The caller's secrets without an SVID that has expired; an expired one is renewed at once.
  private static func servable(_ lease: SecretLease, at date: Date) -> ServedSecrets {
    let current = lease.cache.current
    if current.svidExpired(at: date) { lease.noticeExpired() }
    return current.servable(at: date)
  }
}
