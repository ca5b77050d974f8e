import EnvoySDSProtos
import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// A Workload API call is listed in the stream registry by its method and caller while it is
/// open, and only then.
@Suite(.timeLimit(.minutes(1))) struct WorkloadAPIListingTests {
  @Test func aCallIsListedUntilItCloses() async throws {
    let clock = ManualClock(startDate: Fixtures.now)
    let counters = AgentCounters()
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material))
    let table = IdentityTable(
      pinned: Fixtures.identity, template: IdentitySettings(keyType: .ecdsaP256, ttl: .seconds(3600)),
      idleTimeout: .seconds(600), now: clock.date)
    try table.installTrustBundle(ca.trustBundle)
    try await IdentitySupervisor(
      table: table, authority: ca, counters: counters, clock: clock, now: { clock.date }, random: { 1 },
      wallClockCheck: nil, logger: Logger(label: "test")
    ).performDueWork(for: Fixtures.identity)
    let admission = CallerAdmission(
      attestor: CallerAttestor(
        mode: .agent, rules: [], agentIdentity: Fixtures.identity, authenticator: nil, remoteCA: false,
        executable: { _ in nil }),
      limiter: CallerRateLimiter(limits: CallerLimits()), table: table, counters: counters,
      logger: Logger(label: "test"), now: { clock.date })
    let registry = StreamRegistry()
    let service = WorkloadAPIService(logger: Logger(label: "test"), registry: registry, now: { clock.date })

    let lease = try await admission.lease(for: nil)
    let call = service.listed(service.openFetchX509Bundles(lease), method: .fetchX509Bundles, lease: lease)
    #expect(registry.streams.map(\.method) == [.fetchX509Bundles])
    #expect(registry.streams.first?.identity == Fixtures.identity.description)
    guard case .send(let response) = try call.handle(.request(SpiffeWorkload_X509BundlesRequest())) else {
      Issue.record("the listed call did not answer")
      return
    }
    #expect(response.bundles.keys.sorted() == ["spiffe://cluster.local"])
    call.close()
    #expect(registry.streams.isEmpty)

    let unlisted = WorkloadAPIService(logger: Logger(label: "test"), now: { clock.date })
    let other = try await admission.lease(for: nil)
    unlisted.listed(unlisted.openFetchX509Bundles(other), method: .fetchX509Bundles, lease: other).close()
    #expect(registry.streams.isEmpty)
  }
}
