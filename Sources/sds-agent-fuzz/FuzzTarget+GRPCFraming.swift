import Foundation
import NIOCore
import SDSAgent

extension FuzzTarget {
  /// The SDS socket's request framing, fed in chunks the input chooses: every message it yields
  /// fits the limit and the bytes it yields never exceed those appended; `grpc-timeout` values
  /// that parse are never negative.
  static let grpcFraming = FuzzTarget(
    name: "grpc-framing",
    summary: "GRPCMessageDeframer over arbitrary chunks, and grpc-timeout parsing"
  ) { data in
    var input = FuzzInput(data)
    if let timeout = GRPCRequestHead.timeout(input.string()) {
      FuzzTarget.check(timeout >= .zero, "grpc-timeout parsed as \(timeout)")
    }
    var deframer = GRPCMessageDeframer(maximumLength: Int(input.uint16()))
    var appended = 0
    var yielded = 0
    var messages = 0
    while !input.isEmpty {
      let chunk = input.bytes(Int(input.byte()))
      appended += chunk.count
      deframer.append(ByteBuffer(bytes: chunk))
      do throws(GRPCStatusError) {
        while let message = try deframer.next() {
          FuzzTarget.check(message.readableBytes <= deframer.maximumLength, "a message over the limit was yielded")
          yielded += 5 + message.readableBytes
          messages += 1
        }
      } catch {
        return "refused after \(messages) messages: \(error.status.code)"
      }
      FuzzTarget.check(yielded <= appended, "yielded \(yielded) bytes of \(appended) appended")
    }
    return "\(messages) messages, partial: \(deframer.hasPartialMessage)"
  }
}
