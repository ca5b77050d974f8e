import EnvoySDSProtos
import NIOCore
import SDSAgentCore
import SwiftProtobuf

/// A response message as the SDS socket writes it.
protocol SocketResponse: Sendable {
  /// The message framed as gRPC frames it: flag, length, bytes.
  func socketMessage() throws -> ByteBuffer
}

extension SocketResponse where Self: SwiftProtobuf.Message {
  func socketMessage() throws -> ByteBuffer {
    GRPCMessageDeframer.frame(try self.serializedBytes(), allocator: ByteBufferAllocator())
  }
}

extension StreamedDiscoveryResponse: SocketResponse {
  /// Written straight into the frame: the bytes every stream shares, then this stream's nonce.
  func socketMessage() -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: 5 + self.byteCount)
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(self.byteCount))
    self.serialize { buffer.writeBytes($0) }
    return buffer
  }
}

extension Envoy_Service_Discovery_V3_DeltaDiscoveryResponse: SocketResponse {}
extension SpiffeWorkload_X509SVIDResponse: SocketResponse {}
extension SpiffeWorkload_X509BundlesResponse: SocketResponse {}
extension SpiffeWorkload_JWTSVIDResponse: SocketResponse {}
extension SpiffeWorkload_JWTBundlesResponse: SocketResponse {}
extension SpiffeWorkload_ValidateJWTSVIDResponse: SocketResponse {}
