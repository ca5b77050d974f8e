import GRPCCore
import SDSAgentCore
import Testing

/// When a Workload API stream sends: at its request, then on every change of what it carries,
/// and never twice for the same state.
@Suite struct WorkloadAPIStreamStateTests {
  @Test func theSVIDStreamSendsOnItsRequestThenOnEveryRotationOnly() throws {
    let cache = SecretCache()
    try cache.update(with: Fixtures.issue())
    var state = WorkloadAPIStreamState(.x509SVID)
    #expect(try state.secretsChanged(cache.current) == .wait)
    #expect(try state.requestReceived(cache.current) == .send)
    #expect(try state.requestsEnded() == .wait)
    #expect(try state.secretsChanged(cache.current) == .wait)
    try cache.update(with: Fixtures.issue())
    #expect(try state.secretsChanged(cache.current) == .send)
    #expect(try state.secretsChanged(cache.current) == .wait)
  }

  @Test func aFederationChangeIsPushedToBothStreams() throws {
    let cache = SecretCache()
    let issued = try Fixtures.issue()
    try cache.update(with: issued)
    var svid = WorkloadAPIStreamState(.x509SVID)
    var bundles = WorkloadAPIStreamState(.x509Bundles)
    #expect(try svid.requestReceived(cache.current) == .send)
    #expect(try bundles.requestReceived(cache.current) == .send)
    let other = try CAMaterial.generateRoot(trustDomain: "example.org", now: Fixtures.now)
    cache.updateTrust(
      try ServedTrust(
        ownDomain: TrustDomainName(of: Fixtures.identity), own: issued.trustBundle,
        federated: [try TrustDomainName(parsing: "example.org"): TrustBundle(roots: [other.certificate])]))
    #expect(try svid.secretsChanged(cache.current) == .send)
    #expect(try bundles.secretsChanged(cache.current) == .send)
    // A rotation changes the SVID, not the bundles.
    try cache.update(with: Fixtures.issue())
    #expect(try svid.secretsChanged(cache.current) == .send)
    #expect(try bundles.secretsChanged(cache.current) == .wait)
  }

  @Test func noSVIDEndsTheStreamUnavailable() throws {
    var state = WorkloadAPIStreamState(.x509SVID)
    let refusal = #expect(throws: WorkloadAPIFailure.self) { try state.requestReceived(SecretCache().current) }
    #expect(refusal?.code == .notReady)
    #expect(refusal?.rpcErrorCode == .unavailable)

    let cache = SecretCache()
    try cache.update(with: Fixtures.issue())
    var served = WorkloadAPIStreamState(.x509SVID)
    #expect(try served.requestReceived(cache.current) == .send)
    cache.withdrawSVID()
    let withdrawn = #expect(throws: WorkloadAPIFailure.self) { try served.secretsChanged(cache.current) }
    #expect(withdrawn?.rpcErrorCode == .unavailable)
  }

  @Test func aSecondRequestOrNoneIsInvalid() throws {
    let cache = SecretCache()
    try cache.update(with: Fixtures.issue())
    var state = WorkloadAPIStreamState(.x509Bundles)
    #expect(throws: WorkloadAPIFailure.self) { try state.requestsEnded() }
    #expect(try state.requestReceived(cache.current) == .send)
    let second = #expect(throws: WorkloadAPIFailure.self) { try state.requestReceived(cache.current) }
    #expect(second?.rpcErrorCode == .invalidArgument)
  }
}
