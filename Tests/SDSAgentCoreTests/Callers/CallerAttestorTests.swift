import Foundation
import GRPCCore
import SDSAgentCore
import Testing

@Suite struct CallerAttestorTests {
  static let frontend = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  static let gateway = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/gateway")
  static let agent = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")

  struct TokenTable: CallerAuthenticator {
    func authenticate(bearerToken: String) async -> CallerAuthentication {
      bearerToken == "frontend-token" ? .authenticated(CallerAttestorTests.frontend) : .refused("unknown token")
    }
  }

  func attestor(
    _ mode: CallerIdentification,
    remoteCA: Bool = false,
    executables: [Int32: String] = [:]
  ) -> CallerAttestor {
    CallerAttestor(
      mode: mode,
      rules: [
        WorkloadRule(uid: 1002, executable: "/usr/local/bin/envoy", identity: Self.gateway),
        WorkloadRule(uid: 1001, identity: Self.frontend),
      ],
      agentIdentity: Self.agent,
      authenticator: TokenTable(),
      remoteCA: remoteCA,
      executable: { executables[$0] }
    )
  }

  @Test func theFirstRuleThatMatchesEverySelectorWins() async throws {
    let attestor = self.attestor(.peer, executables: [7: "/usr/local/bin/envoy", 8: "/usr/bin/curl"])
    let envoy = try await attestor.attest(CallerEvidence(peer: PeerCredentials(pid: 7, uid: 1002, gid: 1), token: nil))
    #expect(envoy.identity == Self.gateway)
    await #expect {
      _ = try await attestor.attest(CallerEvidence(peer: PeerCredentials(pid: 8, uid: 1002, gid: 1), token: nil))
    } throws: { error in
      let refusal = error as! CallerRefusal
      return refusal.code == .permissionDenied && refusal.message.contains("uid=1002")
        && refusal.message.contains("exe=/usr/bin/curl")
    }
    // A process whose executable cannot be read (gone, or the pid was reused) matches no exe rule.
    await #expect(throws: CallerRefusal.self) {
      _ = try await attestor.attest(CallerEvidence(peer: PeerCredentials(pid: 9, uid: 1002, gid: 1), token: nil))
    }
  }

  @Test func peerOrTokenPrefersTheTokenAndPeerAndTokenNeedsBothToAgree() async throws {
    let frontendPeer = PeerCredentials(pid: 5, uid: 1001, gid: 1)
    let either = self.attestor(.peerOrToken)
    #expect(try await either.attest(CallerEvidence(peer: nil, token: "frontend-token")).identity == Self.frontend)
    #expect(try await either.attest(CallerEvidence(peer: frontendPeer, token: nil)).identity == Self.frontend)
    let both = self.attestor(.peerAndToken)
    #expect(
      try await both.attest(CallerEvidence(peer: frontendPeer, token: "frontend-token")).identity == Self.frontend)
    await #expect(throws: CallerRefusal(.unauthenticated, "the forwarded token was refused: unknown token")) {
      _ = try await both.attest(CallerEvidence(peer: frontendPeer, token: "stolen"))
    }
  }

  @Test func aForwardedTokensClaimsAreShownCutInARefusal() async throws {
    let attestor = CallerAttestor(
      mode: .token, rules: [], agentIdentity: Self.agent, authenticator: nil, remoteCA: true, executable: { _ in nil })
    func base64URL(_ text: String) -> String {
      Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
    let subject = String(repeating: "s", count: 100_000)
    let token = base64URL(#"{"alg":"RS256"}"#) + "." + base64URL(#"{"sub":"\#(subject)"}"#) + ".c2ln"
    await #expect {
      _ = try await attestor.attest(CallerEvidence(peer: nil, token: token))
    } throws: { error in
      let refusal = error as! CallerRefusal
      return refusal.code == .unauthenticated && refusal.message.contains("is not system:serviceaccount")
        && refusal.message.utf8.count < 1024
    }
  }

  @Test func inFetchModeTheCredentialCarriesTheCallersAuthority() async throws {
    let peer = try await self.attestor(.peer, remoteCA: true).attest(
      CallerEvidence(peer: PeerCredentials(pid: 5, uid: 1001, gid: 1), token: nil))
    #expect(peer.credential == .impersonation)
    let token = try await self.attestor(.token, remoteCA: true).attest(
      CallerEvidence(peer: nil, token: "frontend-token"))
    #expect(token.credential == .forwardedToken("frontend-token"))
    #expect(token.isVerified)
    let local = try await self.attestor(.token).attest(CallerEvidence(peer: nil, token: "frontend-token"))
    #expect(local.credential == .agent)
  }

  @Test func evidenceComesFromTheCarrierAndAnyOfTheTokenHeaders() {
    var metadata = Metadata()
    metadata.addString("pid=3;uid=1001;gid=1002", forKey: PeerCredentials.carrierKey)
    // Binary headers arrive base64-encoded on the wire.
    metadata.addString(Data("tok-1".utf8).base64EncodedString(), forKey: "istio_sds_credentail_header-bin")
    let evidence = CallerEvidence(metadata: metadata)
    #expect(evidence.peer == PeerCredentials(pid: 3, uid: 1001, gid: 1002))
    #expect(evidence.token == "tok-1")
    var bearer = Metadata()
    bearer.addString("Bearer tok-2", forKey: "authorization")
    bearer.addString("pid=x;uid=1", forKey: PeerCredentials.carrierKey)
    #expect(CallerEvidence(metadata: bearer) == CallerEvidence(peer: nil, token: "tok-2"))
  }
}

@Suite struct SecretNamingTests {
  let naming = SecretNaming(identity: CallerAttestorTests.frontend)

  @Test func aCallerMayUseIstiosNamesOrItsOwnSPIFFEIDAndTrustDomain() throws {
    let resolved = try self.naming.resolve([
      "default", CallerAttestorTests.frontend.description, "spiffe://cluster.local", "ROOTCA", "default",
    ])
    let domain = TrustDomainName(of: CallerAttestorTests.frontend)
    #expect(
      resolved.map(\.resource) == [
        .tlsCertificate, .tlsCertificate, .trustDomain(domain, spiffeValidator: true), .validationContext,
      ])
    #expect(resolved[1].name == CallerAttestorTests.frontend.description)
  }

  @Test func federatedDomainsAndALLAreServedForTheSPIFFEValidatorUnlessItIsOff() throws {
    let other = try TrustDomainName(parsing: "other.example")
    let domains: Set = [TrustDomainName(of: CallerAttestorTests.frontend), other]
    let resolved = try self.naming.resolve(["spiffe://other.example", "ALL"], trustDomains: domains)
    #expect(resolved.map(\.resource) == [.trustDomain(other, spiffeValidator: true), .allTrustDomains])
    #expect(throws: SDSRequestError.self) { try self.naming.resolve(["spiffe://third.example"], trustDomains: domains) }
    var plain = self.naming
    plain.spiffeValidator = false
    #expect(
      try plain.resolve(["spiffe://other.example"], trustDomains: domains).map(\.resource) == [
        .trustDomain(other, spiffeValidator: false)
      ])
    #expect {
      try plain.resolve(["ALL"], trustDomains: domains)
    } throws: { error in
      (error as? SDSRequestError)?.code == .validatorDisabled && "\(error)".contains("disable_spiffe_cert_validation")
    }
  }

  @Test func anotherWorkloadsNameIsForbiddenAndAnythingElseUnknown() {
    #expect(throws: SDSRequestError.self) { try self.naming.resolve([CallerAttestorTests.gateway.description]) }
    do {
      _ = try self.naming.resolve(["ROOTCA", CallerAttestorTests.gateway.description, "nope"])
      Issue.record("resolved a forbidden name")
    } catch {
      #expect(error.code == .forbiddenName)
    }
    do {
      _ = try self.naming.resolve(["spiffe://elsewhere.org"])
      Issue.record("resolved an unknown name")
    } catch {
      #expect(error.code == .unknownResource)
      #expect(error.message.contains(CallerAttestorTests.frontend.description))
    }
  }
}

@Suite struct RateLimitTests {
  @Test func ratesParseAndBucketsRefillAtTheirRate() throws {
    #expect(Rate(parsing: "10/m") == Rate(count: 10, period: .seconds(60)))
    #expect(Rate(parsing: "0/s") == nil)
    #expect(Rate(parsing: "5 per second") == nil)
    let start = Date(timeIntervalSince1970: 0)
    var bucket = TokenBucket(rate: try #require(Rate(parsing: "2/s")), now: start)
    #expect(bucket.take(now: start) == nil)
    #expect(bucket.take(now: start) == nil)
    #expect(bucket.take(now: start) == .milliseconds(500))
    #expect(bucket.take(now: start.addingTimeInterval(0.5)) == nil)
  }

  @Test func workloadRulesParseAndExplainMistakes() throws {
    let envoy = try WorkloadRuleTests.file(named: "envoy")
    let rule = try WorkloadRule(
      parsing: "uid=1002, exe=\(envoy), spiffe-id=spiffe://cluster.local/ns/a/sa/b")
    #expect(rule.uid == 1002 && rule.executable == envoy && rule.gid == nil)
    #expect(rule.matches(PeerCredentials(pid: 1, uid: 1002, gid: 9, executable: envoy)))
    #expect(!rule.matches(PeerCredentials(pid: 1, uid: 1002, gid: 9)))
    for bad in ["uid=1,spiffe-id=spiffe://cluster.local", "exe=envoy,spiffe-id=spiffe://cluster.local/a", "pid=3"] {
      #expect(throws: ConfigurationError.self) { try WorkloadRule(parsing: bad) }
    }
  }
}
