import EnvoySDSProtos
import Foundation
import Logging
import SwiftProtobuf
import Testing

@testable import SDSAgentCore

/// A `StreamSecrets` response: every field but the nonce encoded once per revision and shared by
/// the identity's streams, then each stream's nonce; the bytes are the ones SwiftProtobuf writes.
@Suite struct StreamedDiscoveryResponseTests {
  typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

  static func response(resourceBytes: [Int]) -> Response {
    var response = Response()
    response.versionInfo = "12345678901"
    response.typeURL = SecretResource.typeURL
    response.resources = resourceBytes.map { count in
      var any = Google_Protobuf_Any()
      any.typeURL = SecretResource.typeURL
      any.value = Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) })
      return any
    }
    return response
  }

  // Nonce lengths around the varint boundary (127/128); resources around 127/128 and 16383/16384.
  @Test(
    "writes the bytes SwiftProtobuf writes",
    arguments: [
      "", "1", "18446744073709551615", String(repeating: "7", count: 127), String(repeating: "7", count: 128),
    ],
    [[], [1_900], [127, 128, 0], [16_384]])
  func sameBytesAsSwiftProtobuf(nonce: String, resourceBytes: [Int]) throws {
    var whole = Self.response(resourceBytes: resourceBytes)
    let shared: [UInt8] = try whole.serializedBytes()
    whole.nonce = nonce
    let response = StreamedDiscoveryResponse(shared: shared, nonce: nonce)
    #expect(response.serializedBytes == (try whole.serializedBytes() as [UInt8]))
    #expect(try response.message() == whole)
  }

  func stream(on cache: SecretCache, service: SecretDiscoveryService)
    -> SecretStream<Envoy_Service_Discovery_V3_DiscoveryRequest, StreamedDiscoveryResponse>
  {
    let caller = Caller(identity: Fixtures.identity, credential: .agent, isVerified: true, evidence: "test")
    return service.openStreamSecrets(SecretLease(caller: caller, cache: cache) {})
  }

  func sent(_ step: SecretDiscoveryService.Step<StreamedDiscoveryResponse>) -> StreamedDiscoveryResponse? {
    if case .send(let response) = step { return response }
    return nil
  }

  static func address(_ bytes: [UInt8]) -> UnsafeRawPointer? {
    bytes.withUnsafeBytes { $0.baseAddress }
  }

  @Test func streamsOfOneIdentityShareOneEncodingUntilTheSecretsChange() throws {
    let cache = SecretCache()
    try cache.update(with: try Fixtures.issue())
    let service = SecretDiscoveryService(
      leases: UnusedLeases(), counters: AgentCounters(), logger: Logger(label: "test"), now: { Fixtures.now })
    var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
    request.typeURL = SecretResource.typeURL
    request.resourceNames = ["default"]
    let streams = (0..<3).map { _ in self.stream(on: cache, service: service) }
    let first = try streams.map { try #require(self.sent(try $0.handle(.request(request)))) }
    // One encoding, the same storage for every stream: none was encoded again.
    #expect(Set(first.map { Self.address($0.shared) }).count == 1)
    let message = try first[0].message()
    #expect(message.nonce == "1" && message.resources.count == 1)

    try cache.update(with: try Fixtures.issue())
    let renewed = try streams.map { try #require(self.sent(try $0.handle(.secretsChanged))) }
    #expect(Set(renewed.map { Self.address($0.shared) }).count == 1)
    #expect(renewed[0].shared != first[0].shared)
    let pushed = try renewed[0].message()
    #expect(pushed.nonce == "2" && pushed.versionInfo != message.versionInfo)
    let served = try cache.current.tlsCertificate.map { try Google_Protobuf_Any(message: secret($0)) }
    #expect(pushed.resources.first?.value == served?.value)
    for stream in streams { stream.close() }
  }

  func secret(_ certificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate)
    -> Envoy_Extensions_TransportSockets_Tls_V3_Secret
  {
    var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
    secret.name = "default"
    secret.tlsCertificate = certificate
    return secret
  }
}

private struct UnusedLeases: SecretLeaseProvider {
  func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
    throw CallerRefusal(.unavailable, "not used")
  }
}

/// What a cache keeps of the responses it encoded: bounded in count and in size.
@Suite struct EncodedResponseMemoTests {
  let resources = [RequestedSecret(name: "default", resource: .tlsCertificate)]

  func encodings(of bytes: Int, revisions: [UInt64], cache: SecretCache) -> Int {
    var count = 0
    for revision in revisions {
      _ = cache.encodedResponse(self.resources, revision: revision) {
        count += 1
        return [UInt8](repeating: 1, count: bytes)
      }
    }
    return count
  }

  @Test func aResponseIsEncodedOncePerRevision() {
    #expect(self.encodings(of: 2_000, revisions: [1, 1, 1, 2, 2], cache: SecretCache()) == 2)
  }

  @Test func aResponseOverTheSizeKeptIsEncodedForEachStream() {
    let over = SecretCache.responseBytesKept + 1
    #expect(self.encodings(of: over, revisions: [1, 1, 1], cache: SecretCache()) == 3)
    #expect(self.encodings(of: SecretCache.responseBytesKept, revisions: [1, 1, 1], cache: SecretCache()) == 1)
  }
}

/// Which changes a stream asks to be woken for, as the service opens it: a `StreamSecrets`
/// stream only for the kinds of the secrets it asks for, a `DeltaSecrets` stream for every one.
@Suite struct StreamWakeTests {
  let cache: SecretCache
  let service = SecretDiscoveryService(
    leases: UnusedLeases(), counters: AgentCounters(), logger: Logger(label: "test"), now: { Fixtures.now })

  init() throws {
    self.cache = SecretCache()
    try self.cache.update(with: try Fixtures.issue())
  }

  func lease() -> SecretLease {
    let caller = Caller(identity: Fixtures.identity, credential: .agent, isVerified: true, evidence: "test")
    return SecretLease(caller: caller, cache: self.cache) {}
  }

  func request(_ names: [String]) -> Envoy_Service_Discovery_V3_DiscoveryRequest {
    var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
    request.typeURL = SecretResource.typeURL
    request.resourceNames = names
    return request
  }

  @Test func aCertificateRotationWakesTheCertificateStreamsOnly() throws {
    let roots = self.service.openStreamSecrets(self.lease())
    let certificate = self.service.openStreamSecrets(self.lease())
    defer {
      roots.close()
      certificate.close()
    }
    _ = try roots.handle(.request(self.request(["ROOTCA"])))
    _ = try certificate.handle(.request(self.request(["default"])))
    #expect(!roots.isAffected(by: .svid))
    #expect(roots.isAffected(by: .trustBundle))
    #expect(certificate.isAffected(by: .svid))
    #expect(!certificate.isAffected(by: [.trustBundle, .federation]))
  }

  @Test func aDeltaStreamIsWokenByEveryChange() {
    let delta = self.service.openDeltaSecrets(self.lease())
    defer { delta.close() }
    #expect(delta.isAffected(by: .svid) && delta.isAffected(by: .sessionTicketKeys))
  }
}
