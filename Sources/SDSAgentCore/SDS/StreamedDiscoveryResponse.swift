import EnvoySDSProtos
import SwiftProtobuf

/// A `StreamSecrets` response as one stream sends it: every field but the nonce encoded once per
/// revision and shared by the identity's streams subscribed to the same secrets
/// (`SecretCache.encodedResponse`), then the stream's own nonce. A rotation pushes the same
/// secrets to every stream; only the nonce is the stream's.
package struct StreamedDiscoveryResponse: Sendable {
  /// `version_info`, `resources` and `type_url` (fields 1, 2 and 4), encoded.
  let shared: [UInt8]
  package let nonce: String

  init(shared: [UInt8], nonce: String) {
    self.shared = shared
    self.nonce = nonce
  }

  /// The response `plan` describes, with the secrets from `served`.
  init(_ plan: SDSResponsePlan, from served: ServedSecrets, cache: SecretCache) throws {
    let shared = try cache.encodedResponse(plan.resources, revision: plan.revision) {
      var response = try Envoy_Service_Discovery_V3_DiscoveryResponse(plan, from: served, cache: cache)
      response.nonce = ""
      return try response.serializedBytes()
    }
    self.init(shared: shared, nonce: plan.nonce)
  }

  /// The length of the response's wire bytes.
  package var byteCount: Int {
    let nonce = self.nonce.utf8.count
    return self.shared.count + (nonce == 0 ? 0 : 1 + Self.varintLength(nonce) + nonce)
  }

  /// Hands `append` the response's wire bytes, in parts: the same bytes as SwiftProtobuf writes
  /// for the whole message, which writes fields in number order, the nonce (5) after the shared
  /// ones.
  package func serialize(into append: (UnsafeRawBufferPointer) -> Void) {
    self.shared.withUnsafeBytes(append)
    let nonce = self.nonce.utf8
    guard !nonce.isEmpty else { return }
    // Tag, length and the nonce's bytes, on the stack: a nonce is a counter, a few bytes.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 11 + nonce.count) { field in
      var end = 0
      func put(_ byte: UInt8) {
        field[end] = byte
        end += 1
      }
      put(5 << 3 | 2)
      var length = UInt(nonce.count)
      while length >= 0x80 {
        put(UInt8(truncatingIfNeeded: length) | 0x80)
        length >>= 7
      }
      put(UInt8(length))
      for byte in nonce { put(byte) }
      append(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: field[..<end])))
    }
  }

  /// The response's wire bytes.
  package var serializedBytes: [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(self.byteCount)
    self.serialize { bytes.append(contentsOf: $0) }
    return bytes
  }

  private static func varintLength(_ value: Int) -> Int {
    var value = UInt(value) >> 7
    var length = 1
    while value != 0 {
      value >>= 7
      length += 1
    }
    return length
  }

  /// The response as a message.
  package func message() throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
    try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: self.serializedBytes)
  }
}
