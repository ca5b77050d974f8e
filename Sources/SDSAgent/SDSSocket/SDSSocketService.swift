import NIOHPACK
import SDSAgentCore

/// Envoy's `SecretDiscoveryService` on the socket: each method's call is a `SecretStreamCall`
/// over the service's stream for it.
struct SDSSocketService: GRPCSocketService {
  static let name = "envoy.service.secret.v3.SecretDiscoveryService"

  /// The RPCs the socket serves.
  enum Method: String, Sendable, CaseIterable {
    case streamSecrets = "StreamSecrets"
    case deltaSecrets = "DeltaSecrets"
    case fetchSecrets = "FetchSecrets"
  }

  let service: SecretDiscoveryService

  var name: String { Self.name }

  func serves(_ method: Substring) -> Bool { Method(rawValue: String(method)) != nil }

  func admits(_ headers: HPACKHeaders, method: Substring) -> GRPCStatus? { nil }

  func open(_ method: Substring, lease: SecretLease) -> (any GRPCSocketCall)? {
    switch Method(rawValue: String(method)) {
    case .streamSecrets: SecretStreamCall(self.service.openStreamSecrets(lease))
    case .deltaSecrets: SecretStreamCall(self.service.openDeltaSecrets(lease), incremental: true)
    case .fetchSecrets: SecretStreamCall(self.service.openFetchSecrets(lease))
    case nil: nil
    }
  }
}
