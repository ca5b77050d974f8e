import NIOHPACK
import SDSAgentCore

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
  }

  let service: WorkloadAPIService

  var name: String { Self.name }

  func serves(_ method: Substring) -> Bool {
    guard let method = Method(rawValue: String(method)) else { return false }
    return !method.isJWT || self.service.jwt != nil
  }

  /// A request without `workload.spiffe.io: true` ends INVALID_ARGUMENT (which clients do not
  /// retry): it was not sent by a Workload API client, and may be a browser's or a proxy's.
  func admits(_ headers: HPACKHeaders) -> GRPCStatus? {
    guard headers[Self.securityHeader].contains("true") else {
      return GRPCStatus(
        code: .invalidArgument,
        message: "security header missing from request: Workload API requests carry \(Self.securityHeader): true")
    }
    return nil
  }

  func open(_ method: Substring, lease: SecretLease) -> (any GRPCSocketCall)? {
    switch Method(rawValue: String(method)) {
    case .fetchX509SVID: SecretStreamCall(self.service.openFetchX509SVID(lease))
    case .fetchX509Bundles: SecretStreamCall(self.service.openFetchX509Bundles(lease))
    case .fetchJWTSVID: self.service.jwt.map { SecretStreamCall(self.service.openFetchJWTSVID(lease, issuer: $0)) }
    case .fetchJWTBundles:
      self.service.jwt.map { SecretStreamCall(self.service.openFetchJWTBundles(lease, issuer: $0)) }
    case .validateJWTSVID:
      self.service.jwt.map { SecretStreamCall(self.service.openValidateJWTSVID(lease, issuer: $0)) }
    case nil: nil
    }
  }
}
