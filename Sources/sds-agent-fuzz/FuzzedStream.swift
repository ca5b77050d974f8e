import Foundation
import SDSAgentCore
import SwiftProtobuf

/// A stream state machine under fuzzing, with a model of what it told its client. The SotW and
/// Delta targets run the same program (`run`) over it.
protocol FuzzedStream {
  /// Envoy's request message, decoded from the input's chunks.
  associatedtype Message: SwiftProtobuf.Message
  associatedtype Request

  init()
  var cache: SecretCache { get }
  var requests: Int { get }
  var responses: Int { get }
  static func request(_ message: Message) -> Request
  mutating func receive(_ request: Request)
  func generatedRequest(_ input: inout FuzzInput) -> Request
  mutating func secretsChanged()
  mutating func restart()
}

extension FuzzedStream {
  /// Reads a program from `data`: Envoy's bytes (a u16-length chunk that is a request, or is
  /// skipped), a request built from choices, a new SVID, the SVID withdrawn, a change of nothing,
  /// or a new stream.
  static func run(_ data: Data) -> String {
    var input = FuzzInput(data)
    var stream = Self()
    while !input.isEmpty {
      switch input.byte() % 6 {
      case 0:
        let chunk = input.bytes(Int(input.uint16()))
        guard let message = try? Message(serializedBytes: chunk) else { continue }
        stream.receive(Self.request(message))
      case 1:
        stream.receive(stream.generatedRequest(&input))
      case 2:
        let svids = SDSStreamFixture.shared.svids
        try! stream.cache.update(with: svids[Int(input.byte()) % svids.count])
        stream.secretsChanged()
      case 3:
        stream.cache.withdrawSVID()
        stream.secretsChanged()
      case 4:
        stream.secretsChanged()
      default:
        stream.restart()
      }
    }
    return "\(stream.requests) request(s) accepted, \(stream.responses) response(s) in the last stream"
  }
}
