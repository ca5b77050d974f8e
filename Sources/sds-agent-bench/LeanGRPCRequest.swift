import NIOCore
import NIOHPACK
import SDSAgent

/// What the bench's lean clients write to open a gRPC call: its HEADERS, and its request message
/// framed as the agent frames its own (`GRPCMessageDeframer.frame`).
enum LeanGRPCRequest {
  static func head(path: String) -> HPACKHeaders {
    [
      ":method": "POST", ":scheme": "http", ":path": path, ":authority": "localhost",
      "content-type": "application/grpc", "te": "trailers",
    ]
  }

  static func body(_ message: [UInt8]) -> ByteBuffer {
    GRPCMessageDeframer.frame(message, allocator: ByteBufferAllocator())
  }
}
