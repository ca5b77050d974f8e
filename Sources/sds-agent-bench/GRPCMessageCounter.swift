import NIOCore

/// Counts the gRPC messages of one stream as its DATA frames arrive: each message is a 5-byte
/// prefix (a compression flag and a big-endian length) and that many bytes, and either may be
/// split across frames.
struct GRPCMessageCounter {
  /// Bytes of the current message's prefix read so far; 0 between messages and in a body.
  private var prefixRead = 0
  private var length = 0
  /// Bytes of the current message's body still to come.
  private var bodyLeft = 0

  /// Reads `data`, one DATA frame's payload; returns how many messages it completed.
  mutating func count(_ data: ByteBuffer) -> Int {
    var data = data
    var completed = 0
    while data.readableBytes > 0 {
      if self.bodyLeft > 0 {
        let taken = min(self.bodyLeft, data.readableBytes)
        data.moveReaderIndex(forwardBy: taken)
        self.bodyLeft -= taken
        if self.bodyLeft == 0 { completed += 1 }
        continue
      }
      let byte = Int(data.readInteger(as: UInt8.self)!)
      self.prefixRead += 1
      if self.prefixRead > 1 { self.length = self.length << 8 | byte }
      guard self.prefixRead == 5 else { continue }
      if self.length == 0 { completed += 1 } else { self.bodyLeft = self.length }
      self.prefixRead = 0
      self.length = 0
    }
    return completed
  }
}
