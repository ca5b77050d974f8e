import EnvoySDSProtos
import Foundation
import SwiftProtobuf
import Testing

@testable import SDSAgent

@Suite("DiscoveryResponse socket encoding")
struct DiscoveryResponseEncodingTests {
  static func any(_ typeURL: String, bytes count: Int) -> Google_Protobuf_Any {
    var any = Google_Protobuf_Any()
    any.typeURL = typeURL
    any.value = Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    return any
  }

  static let responses: [Envoy_Service_Discovery_V3_DiscoveryResponse] = {
    var full = Envoy_Service_Discovery_V3_DiscoveryResponse()
    full.versionInfo = "12345678901"
    full.nonce = "7"
    full.typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    // Lengths around the varint boundaries (127/128, 16383/16384).
    full.resources = [
      any(full.typeURL, bytes: 1_900), any(full.typeURL, bytes: 127), any(full.typeURL, bytes: 128),
      any(full.typeURL, bytes: 16_384), any("", bytes: 0), any(full.typeURL, bytes: 0),
    ]
    var empty = Envoy_Service_Discovery_V3_DiscoveryResponse()
    empty.nonce = "1"
    var canary = full
    canary.canary = true
    var heartbeat = Envoy_Service_Discovery_V3_Resource()
    heartbeat.name = "refused.example"
    heartbeat.ttl = Google_Protobuf_Duration(seconds: 1)
    var refused = full
    refused.resources = [(try? Google_Protobuf_Any(message: heartbeat)) ?? Google_Protobuf_Any()]
    return [full, empty, canary, refused, Envoy_Service_Discovery_V3_DiscoveryResponse()]
  }()

  @Test("writes the bytes SwiftProtobuf writes", arguments: Self.responses.indices)
  func sameBytes(index: Int) throws {
    let response = Self.responses[index]
    let bytes = try response.socketBytes()
    #expect(bytes == (try response.serializedBytes() as [UInt8]))
    let decoded = try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: bytes)
    #expect(decoded.versionInfo == response.versionInfo && decoded.nonce == response.nonce)
    #expect(decoded.typeURL == response.typeURL && decoded.canary == response.canary)
    #expect(decoded.resources.map(\.typeURL) == response.resources.map(\.typeURL))
    #expect(decoded.resources.map(\.value) == response.resources.map(\.value))
  }
}
