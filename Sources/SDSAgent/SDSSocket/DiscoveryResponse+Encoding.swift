import EnvoySDSProtos
import Foundation
import SwiftProtobuf

/// A response message as the SDS socket writes it.
protocol SocketResponse: SwiftProtobuf.Message {
  /// The message's wire bytes.
  func socketBytes() throws -> [UInt8]
}

extension SocketResponse {
  func socketBytes() throws -> [UInt8] { try self.serializedBytes() }
}

extension Envoy_Service_Discovery_V3_DeltaDiscoveryResponse: SocketResponse {}
extension SpiffeWorkload_X509SVIDResponse: SocketResponse {}
extension SpiffeWorkload_X509BundlesResponse: SocketResponse {}
extension SpiffeWorkload_JWTSVIDResponse: SocketResponse {}
extension SpiffeWorkload_JWTBundlesResponse: SocketResponse {}
extension SpiffeWorkload_ValidateJWTSVIDResponse: SocketResponse {}

extension Envoy_Service_Discovery_V3_DiscoveryResponse: SocketResponse {
  /// The same bytes as `serializedBytes()` (fields in number order, empty ones left out), written
  /// straight into one array: a rotation encodes one response per stream, each a copy of the
  /// secrets encoded once per revision with its own version and nonce, and SwiftProtobuf's
  /// generic encoder, which visits and measures every field before writing it, costs several
  /// times the copy. Anything this does not write (`canary`, unknown fields) takes that encoder.
  func socketBytes() throws -> [UInt8] {
    guard !self.canary, self.unknownFields.data.isEmpty, self.resources.allSatisfy({ $0.unknownFields.data.isEmpty })
    else { return try self.serializedBytes() }
    let values = self.resources.map(\.value)
    var length = Wire.stringField(self.versionInfo) + Wire.stringField(self.typeURL) + Wire.stringField(self.nonce)
    for (resource, value) in zip(self.resources, values) {
      let body = Wire.stringField(resource.typeURL) + Wire.bytesField(value.count)
      length += 1 + Wire.varintLength(body) + body
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(length)
    Wire.append(string: self.versionInfo, field: 1, to: &bytes)
    for (resource, value) in zip(self.resources, values) {
      bytes.append(2 << 3 | 2)
      Wire.append(varint: Wire.stringField(resource.typeURL) + Wire.bytesField(value.count), to: &bytes)
      Wire.append(string: resource.typeURL, field: 1, to: &bytes)
      if !value.isEmpty {
        bytes.append(2 << 3 | 2)
        Wire.append(varint: value.count, to: &bytes)
        value.withUnsafeBytes { bytes.append(contentsOf: $0) }
      }
    }
    Wire.append(string: self.typeURL, field: 4, to: &bytes)
    Wire.append(string: self.nonce, field: 5, to: &bytes)
    return bytes
  }
}

/// Protocol buffers' length-delimited fields, as proto3 writes them: an empty one not at all.
private enum Wire {
  static func varintLength(_ value: Int) -> Int {
    var value = UInt64(value) >> 7
    var length = 1
    while value != 0 {
      value >>= 7
      length += 1
    }
    return length
  }

  /// The length of a string field (tag, length, bytes); 0 if it is empty.
  static func stringField(_ value: String) -> Int {
    let count = value.utf8.count
    return count == 0 ? 0 : 1 + varintLength(count) + count
  }

  static func bytesField(_ count: Int) -> Int {
    count == 0 ? 0 : 1 + varintLength(count) + count
  }

  static func append(varint value: Int, to bytes: inout [UInt8]) {
    var value = UInt64(value)
    while value >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    bytes.append(UInt8(value))
  }

  static func append(string value: String, field: UInt8, to bytes: inout [UInt8]) {
    let utf8 = value.utf8
    guard !utf8.isEmpty else { return }
    bytes.append(field << 3 | 2)
    append(varint: utf8.count, to: &bytes)
    bytes.append(contentsOf: utf8)
  }
}
