import EnvoySDSProtos
import Foundation
import SwiftProtobuf

/// The validation context that hands Envoy's SPIFFE certificate validator the roots of several
/// trust domains. Envoy picks the bundle by the trust domain of the peer's SPIFFE ID, so one
/// domain's roots never vouch for another domain's identities, unlike a `trusted_ca` that
/// holds them all.
package enum SPIFFEValidationContext {
  /// The extension's name in `custom_validator_config`.
  package static let validatorName = "envoy.tls.cert_validator.spiffe"
  /// The type URL of the extension's `typed_config`.
  package static let validatorConfigTypeURL =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"

  /// A `CertificateValidationContext` with `custom_validator_config` set to the SPIFFE validator
  /// and one `trust_domains` entry per domain, its bundle inline as PEM, in the order of the
  /// domains' names so that the same bundles always encode to the same bytes.
  ///
  /// Envoy refuses a validator configuration without trust domains, and a domain whose bundle
  /// holds no certificate: pass at least one domain, each with roots.
  ///
  /// `revocationLists` (PEM) go inside their domain's bundle: the validator reads CRLs from
  /// there, not from the context's `crl` field, and then checks every CA of a chain.
  package static func certificateValidationContext(
    trustBundles: [TrustDomainName: TrustBundle], revocationLists: [TrustDomainName: String] = [:]
  ) throws -> Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext {
    var config = Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig()
    config.trustDomains = try trustBundles.sorted { $0.key < $1.key }.map { domain, bundle in
      var entry = Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig.TrustDomain()
      entry.name = domain.name
      entry.trustBundle.inlineBytes = Data((try bundle.pemString() + (revocationLists[domain] ?? "")).utf8)
      return entry
    }
    var context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
    context.customValidatorConfig.name = Self.validatorName
    context.customValidatorConfig.typedConfig = try Google_Protobuf_Any(message: config)
    return context
  }
}
