import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SDSAgentTestSupport
import Synchronization
import Testing

@testable import SDSAgentCore

/// `FetchSecrets` as its transport drives it: one request, the client's half-close, then the
/// answer. Without files to read it is made at once, on the transport's thread; a `file-cert:`
/// name is read off it first. Either way the caller's lease is released once.
@Suite(.timeLimit(.minutes(1))) struct FetchSecretsCallTests {
  typealias Request = Envoy_Service_Discovery_V3_DiscoveryRequest
  typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

  let cache = SecretCache()
  let releases = LeaseReleases()

  init() throws {
    try self.cache.update(with: try Fixtures.issue())
  }

  func service(files: (any FileSecretProvider)? = nil) -> SecretDiscoveryService {
    SecretDiscoveryService(
      leases: OneLease(), counters: AgentCounters(), logger: Logger(label: "test"), files: files,
      now: { Fixtures.now })
  }

  func lease() -> SecretLease {
    let caller = Caller(identity: Fixtures.identity, credential: .agent, isVerified: true, evidence: "test")
    return SecretLease(caller: caller, cache: self.cache) { [releases] in releases.count.withLock { $0 += 1 } }
  }

  func request(_ names: [String]) -> Request {
    var request = Request()
    request.typeURL = SecretResource.typeURL
    request.resourceNames = names
    return request
  }

  @Test func withoutFilesToReadTheAnswerIsMadeAtOnce() throws {
    let call = self.service().openFetchSecrets(self.lease())
    guard case .wait = try call.handle(.request(self.request(["default"]))) else {
      Issue.record("the request alone was answered")
      return
    }
    guard case .sendAndEnd(let response) = try call.handle(.requestsEnded) else {
      Issue.record("the answer was not made at once")
      return
    }
    let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(
      unpackingAny: try #require(try response.message().resources.first))
    #expect(secret.name == "default" && !secret.tlsCertificate.certificateChain.inlineBytes.isEmpty)
    call.close()
    #expect(self.releases.count.withLock { $0 } == 1)
  }

  @Test func aNameNotServedIsRefusedAtOnceAndTheLeaseReleased() throws {
    let call = self.service().openFetchSecrets(self.lease())
    _ = try call.handle(.request(self.request(["no-such-secret"])))
    #expect(throws: RPCError.self) { try call.handle(.requestsEnded) }
    call.close()
    #expect(self.releases.count.withLock { $0 } == 1)
  }

  @Test func aFileToReadIsReadOffTheTransportThenAnswered() async throws {
    let files = UnreadableFiles()
    let call = self.service(files: files).openFetchSecrets(self.lease())
    _ = try call.handle(.request(self.request(["file-cert:/etc/tls/a.pem~/etc/tls/a.key"])))
    guard case .later(let answer) = try call.handle(.requestsEnded) else {
      Issue.record("a file to read was read on the transport's thread")
      return
    }
    #expect(files.reads.withLock { $0 } == 0)
    await #expect(throws: RPCError.self) { try await answer() }
    #expect(files.reads.withLock { $0 } == 1)
    call.close()
    #expect(self.releases.count.withLock { $0 } == 1)
  }
}

/// Never asked: the tests lease directly.
private struct OneLease: SecretLeaseProvider {
  func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
    throw CallerRefusal(.unavailable, "not used")
  }
}

/// On-the-fly names under /etc/tls are allowed; reading one fails, and each read is counted.
private final class UnreadableFiles: FileSecretProvider, Sendable {
  let reads = Mutex(0)

  func access(for caller: SPIFFEID) -> FileSecretAccess {
    FileSecretAccess(onTheFly: OnTheFlyFilePolicy(directories: ["/etc/tls"]))
  }

  func hold(_ secrets: [OnTheFlyFileSecret], by holder: UInt64?, caller: SPIFFEID) -> [String] { [] }

  func release(_ holder: UInt64) {}

  func readNow(_ secrets: [OnTheFlyFileSecret]) async -> [String: FileSecretError] {
    self.reads.withLock { $0 += 1 }
    return Dictionary(uniqueKeysWithValues: secrets.map { ($0.name, FileSecretError(.unreadable, "not there")) })
  }
}

final class LeaseReleases: Sendable {
  let count = Mutex(0)
}
