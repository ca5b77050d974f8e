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
    guard headers.first(name: ":method") == "POST" else {
      throw Refusal(
        code: .notPost, httpStatus: 405, status: GRPCStatus(code: .internalError, message: "gRPC requests must be POST")
      )
    }
    let contentType = headers.first(name: "content-type") ?? ""
    guard Self.isGRPC(contentType) else {
      throw Refusal(
        code: .notGRPC, httpStatus: 415,
        status: GRPCStatus(
          code: .internalError,
          message: "content-type \"\(BoundedText(contentType))\" is not gRPC; use application/grpc"))
    }
    let path = headers.first(name: ":path") ?? ""
    guard let route = services.route(path) else {
      throw Refusal(
        code: .unknownMethod,
        status: GRPCStatus(
          code: .unimplemented, message: "unknown method \(BoundedText(path)); this socket serves \(services.names)"))
    }
    if let status = route.service.admits(headers, method: route.method) {
      throw Refusal(code: .refusedByService, status: status)
    }
    if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
      throw Refusal(
        code: .compression,
        status: GRPCStatus(
          code: .unimplemented,
          message: "message compression \"\(BoundedText(encoding))\" is not supported; send identity"))
    }
    var timeout: TimeAmount?
    if let text = headers.first(name: "grpc-timeout") {
      guard let parsed = Self.timeout(text) else {
        throw Refusal(
          code: .malformedTimeout,
          status: GRPCStatus(code: .invalidArgument, message: "malformed grpc-timeout \"\(BoundedText(text))\""))
      }
      timeout = parsed
    }
    return GRPCRequestHead(route: route, timeout: timeout, token: Self.token(in: headers))
  }

  /// `application/grpc`, optionally `+codec` or `;parameters`.
  static func isGRPC(_ contentType: String) -> Bool {
    let base = "application/grpc"
    guard contentType.lowercased().hasPrefix(base) else { return false }
    let rest = contentType.dropFirst(base.count)
    return rest.isEmpty || rest.hasPrefix("+") || rest.hasPrefix(";")
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

  /// The forwarded token under Istio's binary headers (base64 on the wire) or `authorization`.
  static func token(in headers: HPACKHeaders) -> String? {
    var metadata = Metadata()
    for key in CallerEvidence.tokenKeys {
      for value in headers[key] {
        if let bytes = Base64.decode(value) { metadata.addBinary(bytes, forKey: key) }
      }
    }
    for value in headers["authorization"] {
      metadata.addString(value, forKey: "authorization")
    }
    return metadata.isEmpty ? nil : CallerEvidence(metadata: metadata).token
  }
}
