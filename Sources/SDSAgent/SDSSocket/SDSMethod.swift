/// The RPCs of Envoy's `SecretDiscoveryService` the SDS socket serves.
enum SDSMethod: String, Sendable, CaseIterable {
  case streamSecrets = "StreamSecrets"
  case deltaSecrets = "DeltaSecrets"
  case fetchSecrets = "FetchSecrets"

  static let service = "envoy.service.secret.v3.SecretDiscoveryService"

  /// The method a request's `:path` names; nil for any other.
  init?(path: String) {
    let prefix = "/\(Self.service)/"
    guard path.hasPrefix(prefix), let method = SDSMethod(rawValue: String(path.dropFirst(prefix.count))) else {
      return nil
    }
    self = method
  }
}
