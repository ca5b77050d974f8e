import NIOCore
import Testing

@testable import sds_agent_bench

@Suite struct GRPCMessageCounterTests {
  /// Three gRPC messages (bodies of 3, 0 and 300 bytes) back to back.
  static let messages: [UInt8] = [3, 0, 300].flatMap { length -> [UInt8] in
    [0] + withUnsafeBytes(of: UInt32(length).bigEndian, Array.init) + Array(repeating: 7, count: length)
  }

  @Test func countsMessagesInOneFrame() {
    var counter = GRPCMessageCounter()
    #expect(counter.count(ByteBuffer(bytes: Self.messages)) == 3)
  }

  /// A response may span DATA frames, split anywhere, its prefix included.
  @Test(arguments: [1, 2, 4, 5, 6, 8, 9, 10, 13, 14, 100, 313])
  func countsMessagesSplitAcrossFrames(at split: Int) {
    var counter = GRPCMessageCounter()
    let first = counter.count(ByteBuffer(bytes: Self.messages[..<split]))
    let second = counter.count(ByteBuffer(bytes: Self.messages[split...]))
    #expect(first + second == 3)
    #expect(counter.count(ByteBuffer(bytes: Self.messages)) == 3)
  }

  @Test func countsMessagesFedOneByteAtATime() {
    var counter = GRPCMessageCounter()
    let counts = Self.messages.map { counter.count(ByteBuffer(bytes: [$0])) }
    #expect(counts.reduce(0, +) == 3)
    #expect(counts.firstIndex(of: 1) == 7)
  }
}
