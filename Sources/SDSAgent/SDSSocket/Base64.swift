import Foundation

/// Base64 as gRPC's binary headers carry it: padded when sent, padding optional when read.
enum Base64 {
  static func encode(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
  }

  static func decode(_ text: String) -> [UInt8]? {
    var padded = text.trimmingCharacters(in: .whitespaces)
    let remainder = padded.utf8.count % 4
    if remainder != 0 { padded += String(repeating: "=", count: 4 - remainder) }
    return Data(base64Encoded: padded).map { Array($0) }
  }
}
