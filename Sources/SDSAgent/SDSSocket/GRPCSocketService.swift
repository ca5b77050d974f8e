import NIOHPACK
import SDSAgentCore

/// A gRPC service the SDS socket serves, next to any other on the same connections: each
/// request goes by its `:path` (`/<name>/<method>`) to the service it names, which may refuse
/// its headers; once the caller is admitted, the service opens the call.
protocol GRPCSocketService: Sendable {
  /// The service's full name, as in `envoy.service.secret.v3.SecretDiscoveryService`.
  var name: String { get }
  /// Whether the service has `method`; a request for another is unimplemented.
  func serves(_ method: Substring) -> Bool
  /// The status a request of `method` with these headers ends with before its caller is
  /// admitted (a header the service requires is missing, say); nil to admit it.
  func admits(_ headers: HPACKHeaders, method: Substring) -> GRPCStatus?
  /// The call of `method` for an admitted caller; nil if the service has no such method.
  func open(_ method: Substring, lease: SecretLease) -> (any GRPCSocketCall)?
}
