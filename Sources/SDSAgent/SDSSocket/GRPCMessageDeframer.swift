import NIOCore

/// Splits a request body into gRPC's length-prefixed messages: a flag byte (compressed or not),
/// a 4-byte big-endian length, the message. A message longer than `maximumLength` is refused as
/// soon as its prefix arrives, before its bytes are buffered.
package struct GRPCMessageDeframer {
  package let maximumLength: Int
  private var buffer = ByteBuffer()

  package init(maximumLength: Int) {
    self.maximumLength = maximumLength
  }

  package mutating func append(_ bytes: ByteBuffer) {
    if self.buffer.readableBytes == 0 {
      self.buffer = bytes
    } else {
      var bytes = bytes
      self.buffer.writeBuffer(&bytes)
    }
  }

  /// The next complete message, or nil until more bytes arrive.
  package mutating func next() throws(GRPCStatusError) -> ByteBuffer? {
    guard let flag = self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt8.self),
      let length = self.buffer.getInteger(at: self.buffer.readerIndex + 1, as: UInt32.self)
    else { return nil }
    switch flag {
    case 0: break
    case 1:
      throw GRPCStatusError(.compressedMessage, "a compressed message arrived but no grpc-encoding was negotiated")
    default:
      throw GRPCStatusError(.invalidPrefix, "invalid message prefix flag \(flag)")
    }
    guard Int(length) <= self.maximumLength else {
      throw GRPCStatusError(
        .messageTooLarge,
        "a request message of \(length) bytes exceeds the limit of \(self.maximumLength) bytes")
    }
    guard self.buffer.readableBytes >= 5 + Int(length) else { return nil }
    self.buffer.moveReaderIndex(forwardBy: 5)
    let message = self.buffer.readSlice(length: Int(length))
    if self.buffer.readableBytes == 0 { self.buffer = ByteBuffer() }
    return message
  }

  /// Whether bytes of an incomplete message are left (an error at the end of the request).
  package var hasPartialMessage: Bool { self.buffer.readableBytes > 0 }

  /// A message with gRPC's prefix, uncompressed.
  package static func frame(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
    var buffer = allocator.buffer(capacity: 5 + bytes.count)
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(bytes.count))
    buffer.writeBytes(bytes)
    return buffer
  }
}
