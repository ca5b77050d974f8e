import GRPCCore
import NIOCore
import NIOHPACK
import SDSAgentCore

/// A request's HEADERS checked against gRPC's rules: which service and method of those the
/// socket serves, its deadline, and the token its Envoy forwarded. A request that breaks a rule
/// gets the status `parse` throws.
package struct GRPCRequestHead: Sendable {
  let route: GRPCServiceTable.Route
  let timeout: TimeAmount?
  let token: String?

  /// How an HTTP request that is not gRPC is answered: an HTTP status, and a gRPC status for
  /// clients that read one anyway.
  struct Refusal: AgentFailure, Sendable {
    enum Code: String, Sendable {
      /// Not a POST: HTTP 405.
      case notPost = "not_post"
      /// A content-type that is not gRPC's: HTTP 415.
      case notGRPC = "not_grpc"
      /// A path naming no method of the services served: UNIMPLEMENTED.
      case unknownMethod = "unknown_method"
      /// The service refused the request's headers, with its own status.
      case refusedByService = "refused_by_service"
      /// Compressed messages asked for: UNIMPLEMENTED.
      case compression
      /// A `grpc-timeout` that does not parse: INVALID_ARGUMENT.
      case malformedTimeout = "malformed_timeout"
    }

    let code: Code
    var httpStatus = 200
    var status: GRPCStatus

    var message: String { self.status.message }
    var description: String { "\(self.code.rawValue): \(self.message)" }
  }

  static func parse(_ headers: HPACKHeaders, services: GRPCServiceTable) throws(Refusal) -> GRPCRequestHead {
    let fields = Fields(headers)
    guard fields.method == "POST" else {
      throw Refusal(
        code: .notPost, httpStatus: 405, status: GRPCStatus(code: .internalError, message: "gRPC requests must be POST")
      )
    }
    let contentType = fields.contentType ?? ""
    guard Self.isGRPC(contentType) else {
      throw Refusal(
        code: .notGRPC, httpStatus: 415,
        status: GRPCStatus(
          code: .internalError,
          message: "content-type \"\(BoundedText(contentType))\" is not gRPC; use application/grpc"))
    }
    let path = fields.path ?? ""
    guard let route = services.route(path) else {
      throw Refusal(
        code: .unknownMethod,
        status: GRPCStatus(
          code: .unimplemented, message: "unknown method \(BoundedText(path)); this socket serves \(services.names)"))
    }
    if let status = route.service.admits(headers, method: route.method) {
      throw Refusal(code: .refusedByService, status: status)
    }
    if let encoding = fields.encoding, encoding != "identity" {
      throw Refusal(
        code: .compression,
        status: GRPCStatus(
          code: .unimplemented,
          message: "message compression \"\(BoundedText(encoding))\" is not supported; send identity"))
    }
    var timeout: TimeAmount?
    if let text = fields.timeout {
      guard let parsed = Self.timeout(text) else {
        throw Refusal(
          code: .malformedTimeout,
          status: GRPCStatus(code: .invalidArgument, message: "malformed grpc-timeout \"\(BoundedText(text))\""))
      }
      timeout = parsed
    }
    return GRPCRequestHead(route: route, timeout: timeout, token: fields.token)
  }

  /// The headers a request head is read from, each the first of its name, in one pass over the
  /// block: every stream opens with one, and a lookup by name scans the whole block. Names are
  /// compared as they are: HTTP/2 allows only lowercase names, and the HTTP/2 handler refuses a
  /// block with any other.
  private struct Fields {
    var method: String?
    var contentType: String?
    var path: String?
    var encoding: String?
    var timeout: String?
    /// The forwarded token under Istio's binary headers (base64 on the wire) or `authorization`.
    var token: String?

    init(_ headers: HPACKHeaders) {
      var metadata: Metadata?
      for (name, value, _) in headers {
        switch name {
        case ":method": self.method = self.method ?? value
        case "content-type": self.contentType = self.contentType ?? value
        case ":path": self.path = self.path ?? value
        case "grpc-encoding": self.encoding = self.encoding ?? value
        case "grpc-timeout": self.timeout = self.timeout ?? value
        case "authorization": metadata.append(string: value, forKey: name)
        case _ where CallerEvidence.tokenKeys.contains(name):
          if let bytes = Base64.decode(value) { metadata.append(binary: bytes, forKey: name) }
        default: break
        }
      }
      self.token = metadata.flatMap { CallerEvidence(metadata: $0).token }
    }
  }

  /// `application/grpc` (in any case), optionally `+codec` or `;parameters`.
  static func isGRPC(_ contentType: String) -> Bool {
    // What every gRPC client sends, compared in one go.
    if contentType == "application/grpc" { return true }
    let base = "application/grpc".utf8
    let bytes = contentType.utf8
    let lowercased = { (byte: UInt8) in (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
    guard bytes.count >= base.count, zip(bytes, base).allSatisfy({ lowercased($0) == $1 }) else { return false }
    let rest = bytes.dropFirst(base.count)
    return rest.first.map { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ";") } ?? true
  }

  /// gRPC's `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
  package static func timeout(_ text: String) -> TimeAmount? {
    guard let unit = text.last, text.count >= 2, text.count <= 9 else { return nil }
    let digits = text.dropLast()
    guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else { return nil }
    switch unit {
    case "H": return .hours(value)
    case "M": return .minutes(value)
    case "S": return .seconds(value)
    case "m": return .milliseconds(value)
    case "u": return .microseconds(value)
    case "n": return .nanoseconds(value)
    default: return nil
    }
  }
}

extension Optional where Wrapped == Metadata {
  /// Adds to the metadata, made by the first value.
  fileprivate mutating func append(string value: String, forKey key: String) {
    if self == nil { self = Metadata() }
    self?.addString(value, forKey: key)
  }

  fileprivate mutating func append(binary value: [UInt8], forKey key: String) {
    if self == nil { self = Metadata() }
    self?.addBinary(value, forKey: key)
  }
}
