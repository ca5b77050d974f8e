import NIOHPACK
import SDSAgentCore
import SwiftProtobuf

/// The SPIFFE Workload API (`SpiffeWorkloadAPI`, no proto package) on the SDS socket, or on a
/// socket of its own: each method's call is a `SecretStreamCall` over the service's stream for
/// it. Without a JWT signer (fetch mode) the JWT methods answer UNIMPLEMENTED.
struct WorkloadAPISocketService: GRPCSocketService {
  static let name = "SpiffeWorkloadAPI"
  /// The header every Workload API request carries (SPIFFE Workload Endpoint, section 4).
  static let securityHeader = "workload.spiffe.io"

  /// The RPCs the socket serves.
  enum Method: String, Sendable, CaseIterable {
    case fetchX509SVID = "FetchX509SVID"
    case fetchX509Bundles = "FetchX509Bundles"
    case fetchJWTSVID = "FetchJWTSVID"
    case fetchJWTBundles = "FetchJWTBundles"
    case validateJWTSVID = "ValidateJWTSVID"

    var isJWT: Bool { self != .fetchX509SVID && self != .fetchX509Bundles }

    /// The method as `/debug/streams` lists it.
    var listed: StreamRegistry.Method {
      switch self {
      case .fetchX509SVID: .fetchX509SVID
      case .fetchX509Bundles: .fetchX509Bundles
      case .fetchJWTSVID: .fetchJWTSVID
      case .fetchJWTBundles: .fetchJWTBundles
      case .validateJWTSVID: .validateJWTSVID
      }
    }
  }

  let service: WorkloadAPIService

  var name: String { Self.name }

  func serves(_ method: Substring) -> Bool {
    guard let method = Method(rawValue: String(method)) else { return false }
    return !method.isJWT || self.service.jwt != nil
  }

  /// A request without `workload.spiffe.io: true` ends INVALID_ARGUMENT (which clients do not
  /// retry): it was not sent by a Workload API client, and may be a browser's or a proxy's.
  /// Counted by method (one the service serves, never the client's text).
  func admits(_ headers: HPACKHeaders, method: Substring) -> GRPCStatus? {
    guard headers[Self.securityHeader].contains("true") else {
      if let method = Method(rawValue: String(method)) {
        self.service.countRefused(method.rawValue, outcome: Self.missingHeaderOutcome)
      }
      return GRPCStatus(
        code: .invalidArgument,
        message: "security header missing from request: Workload API requests carry \(Self.securityHeader): true")
    }
    return nil
  }

  /// The outcome a request without the security header is counted with.
  static let missingHeaderOutcome = "missing_security_header"

  func open(_ method: Substring, lease: SecretLease) -> (any GRPCSocketCall)? {
    guard let method = Method(rawValue: String(method)) else { return nil }
    let service = self.service
    func listed<Request: Message, Response: SocketResponse & Message>(
      _ call: SecretStream<Request, Response>
    ) -> SecretStreamCall {
      SecretStreamCall(service.listed(call, method: method.listed, lease: lease))
    }
    switch method {
    case .fetchX509SVID: return listed(service.openFetchX509SVID(lease))
    case .fetchX509Bundles: return listed(service.openFetchX509Bundles(lease))
    case .fetchJWTSVID: return service.jwt.map { listed(service.openFetchJWTSVID(lease, issuer: $0)) }
    case .fetchJWTBundles: return service.jwt.map { listed(service.openFetchJWTBundles(lease, issuer: $0)) }
    case .validateJWTSVID: return service.jwt.map { listed(service.openValidateJWTSVID(lease, issuer: $0)) }
    }
  }
}
