/// The SDS resources the agent serves: Istio's `default` and `ROOTCA`, and SPIRE's
/// `spiffe://<trust-domain>` (one trust domain's bundle) and `ALL` (every bundle).
package enum SecretResource: Sendable, Hashable {
  /// `default`: the workload's certificate chain and private key (`tls_certificate`).
  case tlsCertificate
  /// `ROOTCA`: the agent's own trust domain's bundle (`validation_context.trusted_ca`).
  case validationContext
  /// `spiffe://<trust-domain>`: that domain's bundle, for Envoy's SPIFFE certificate validator
  /// or as a plain `trusted_ca`.
  case trustDomain(TrustDomainName, spiffeValidator: Bool)
  /// `ALL`: every trust domain's bundle, for Envoy's SPIFFE certificate validator.
  case allTrustDomains
  /// A DNS name (an SNI): a TLS server certificate minted on demand (`tls_certificate`).
  case onDemand(DNSName)
  /// An on-demand name refused (not allowed, not a host name, over the cap or the rate): answered
  /// so that Envoy's handshake fails at once — removed on a delta stream, a short-lived heartbeat
  /// on a state-of-the-world one — instead of waiting.
  case refused(String)
  /// A secret the operator named, read from files (`secret` in the configuration).
  case file(String)
  /// `jwt-svid:<audience>`: a JWT-SVID of the caller's identity for the audience, as
  /// `Bearer <JWT>` (`generic_secret`), for Envoy's credential injector; renewed at half its life.
  case jwtSVID(JWTAudience)
  /// Session ticket keys the operator named (`session-ticket-keys`), derived from a seed each
  /// epoch (`session_ticket_keys`).
  case sessionTicketKeys(String)

  /// The fixed names; a trust domain's bundle is named `spiffe://<trust-domain>`.
  package var name: String {
    switch self {
    case .tlsCertificate: return "default"
    case .validationContext: return "ROOTCA"
    case .trustDomain(let domain, _): return "spiffe://\(domain)"
    case .allTrustDomains: return Self.allTrustDomainsName
    case .onDemand(let name): return name.name
    case .refused(let name): return name
    case .file(let name): return name
    case .jwtSVID(let audience): return audience.secretName
    case .sessionTicketKeys(let name): return name
    }
  }

  package static let allTrustDomainsName = "ALL"

  /// `default` or `ROOTCA`.
  package init?(name: String) {
    switch name {
    case "default": self = .tlsCertificate
    case "ROOTCA": self = .validationContext
    default: return nil
    }
  }

  package static var knownNames: [String] { ["default", "ROOTCA"] }

  /// Whether the resource carries the bundle of `ownDomain`, the agent's own trust domain.
  package func carriesBundle(of ownDomain: TrustDomainName) -> Bool {
    switch self {
    case .tlsCertificate, .onDemand, .refused, .file, .jwtSVID, .sessionTicketKeys: return false
    case .validationContext, .allTrustDomains: return true
    case .trustDomain(let domain, _): return domain == ownDomain
    }
  }

  /// `type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret`.
  package static let typeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
}
