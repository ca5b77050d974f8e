/// The SDS resources the agent serves, by the names Istio's agent uses.
public enum SecretResource: Sendable, Hashable, CaseIterable {
  /// `default`: the workload's certificate chain and private key (`tls_certificate`).
  case tlsCertificate
  /// `ROOTCA`: the trust bundle (`validation_context.trusted_ca`).
  case validationContext

  public var name: String {
    switch self {
    case .tlsCertificate: return "default"
    case .validationContext: return "ROOTCA"
    }
  }

  public init?(name: String) {
    guard let resource = Self.allCases.first(where: { $0.name == name }) else { return nil }
    self = resource
  }

  public static var knownNames: [String] { Self.allCases.map(\.name) }

  /// `type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret`.
  public static let typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
}
