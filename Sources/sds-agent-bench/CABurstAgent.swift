import Foundation
import Logging
import SDSAgent
import SDSAgentCore

/// One simulated node agent of a renewal storm: the agent's `IstioCAClient`, retried the way
/// `IdentityLifecycle` schedules retries. The waits are the agent's own retry timers.
struct CABurstAgent: Sendable {
  let client: IstioCAClient
  let identity: SPIFFEID
  let key: WorkloadPrivateKey
  let token: String

  init(index: Int, fleet: CABurstFleet, addresses: [CAAddress]) throws {
    var configuration = try IstioCAConfiguration(
      host: addresses[0].host, port: addresses[0].port, rootsFile: fleet.directory + "/root.pem",
      requestTimeout: .seconds(60))
    configuration.addresses = addresses
    var logger = Logger(label: "bench-agent")
    logger.logLevel = .critical
    self.client = try IstioCAClient(configuration: configuration, logger: logger, node: "node-\(index)")
    self.identity = fleet.identities[index]
    self.key = fleet.keys[index]
    self.token = fleet.tokens[index]
  }

  /// One signing, through the client's connections (`client.run()` runs elsewhere).
  func certify() async throws(CertificateAuthorityError) -> IssuedSVID {
    try await self.client.certify(
      identity: self.identity, privateKey: self.key, ttl: .seconds(3600), now: Date(),
      credential: .forwardedToken(self.token))
  }

  /// One attempt, for readiness.
  func renewOnce() async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
      group.addTask { (try? await self.client.run()) != nil }
      defer { group.cancelAll() }
      do {
        _ = try await self.client.certify(
          identity: self.identity, privateKey: self.key, ttl: .seconds(3600), now: Date(),
          credential: .forwardedToken(self.token))
        return true
      } catch {
        return false
      }
    }
  }

  /// Renews until it has a certificate: (time since `started`, calls refused, other failures).
  /// The client's connections run elsewhere (`client.run()`).
  func renew(since started: ContinuousClock.Instant) async -> (Duration, Int, Int) {
    var backoff = Backoff()
    var refusals = 0
    var failures = 0
    while true {
      do throws(CertificateAuthorityError) {
        _ = try await self.client.certify(
          identity: self.identity, privateKey: self.key, ttl: .seconds(3600), now: Date(),
          credential: .forwardedToken(self.token))
        return (ContinuousClock.now - started, refusals, failures)
      } catch {
        let delay: Duration
        if let hint = error.retryAfter {
          refusals += 1
          delay = IdentityLifecycle.delay(after: hint, maximum: backoff.maximum, sample: .random(in: 0...1))
        } else {
          failures += 1
          delay = backoff.nextDelay(sample: .random(in: 0...1))
        }
        try? await Task.sleep(for: delay)
      }
    }
  }
}
