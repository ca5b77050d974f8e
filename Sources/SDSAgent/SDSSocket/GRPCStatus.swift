import GRPCCore
import NIOHPACK
import SDSAgentCore

/// The status that ends an RPC, as the trailers carry it: `grpc-status`, a bounded and
/// percent-encoded `grpc-message`, and any metadata the error adds.
package struct GRPCStatus: Sendable, Equatable {
  package var code: Status.Code
  package var message: String
  package var metadata: Metadata = [:]

  static let ok = GRPCStatus(code: .ok, message: "")

  init(code: Status.Code, message: String, metadata: Metadata = [:]) {
    self.code = code
    self.message = message
    self.metadata = metadata
  }

  /// The status an error thrown by the service ends its RPC with.
  init(_ error: RPCError) {
    self.init(code: Status.Code(error.code), message: error.message, metadata: error.metadata)
  }

  init(_ error: some RPCErrorConvertible) {
    self.init(RPCError(error))
  }

  /// The longest `grpc-message` sent, in characters: a status never echoes unbounded input.
  static let messageLimit = 1024

  /// Adds the status to a trailers (or trailers-only) header block.
  func add(to headers: inout HPACKHeaders) {
    headers.add(name: "grpc-status", value: String(self.code.rawValue))
    if !self.message.isEmpty {
      headers.add(
        name: "grpc-message",
        value: Self.percentEncoded(BoundedText(self.message, limit: Self.messageLimit).description))
    }
    for (key, value) in self.metadata {
      switch value {
      case .string(let text): headers.add(name: key, value: text)
      case .binary(let bytes): headers.add(name: key, value: Base64.encode(bytes))
      }
    }
  }

  /// gRPC's encoding of `grpc-message`: UTF-8, with every byte outside printable ASCII and `%`
  /// itself written as `%XX`.
  static func percentEncoded(_ message: String) -> String {
    var encoded = ""
    encoded.reserveCapacity(message.utf8.count)
    for byte in message.utf8 {
      if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
        encoded.unicodeScalars.append(Unicode.Scalar(byte))
      } else {
        encoded += "%" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
      }
    }
    return encoded
  }
}
