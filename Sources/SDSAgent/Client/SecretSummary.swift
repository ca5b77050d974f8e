import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftASN1
import SwiftProtobuf
import X509

/// What an SDS secret holds, readable by a person: never the key unless asked for.
package struct SecretSummary: Sendable {
  package enum Kind: String, Sendable {
    case tlsCertificate = "tls_certificate"
    case validationContext = "validation_context"
  }

  package let name: String
  package let kind: Kind
  /// The leaf first for a certificate; the roots for a bundle.
  package let certificates: [Certificate]
  package let pem: String
  package let privateKeyPEM: String?
  /// For a bundle served to Envoy's SPIFFE certificate validator: the roots of each trust domain
  /// (`certificates` holds them all); `nil` for a plain `trusted_ca`.
  package let trustDomains: [String: [Certificate]]?

  package init(any: Google_Protobuf_Any) throws {
    guard any.typeURL == SecretResource.typeURL else {
      throw AgentError(.connection, "the agent returned a resource of type \(any.typeURL)")
    }
    let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: any)
    self.name = secret.name
    switch secret.type {
    case .tlsCertificate(let certificate):
      self.kind = .tlsCertificate
      self.pem = String(decoding: certificate.certificateChain.inlineBytes, as: UTF8.self)
      self.privateKeyPEM = String(decoding: certificate.privateKey.inlineBytes, as: UTF8.self)
      self.trustDomains = nil
    case .validationContext(let context):
      self.kind = .validationContext
      self.privateKeyPEM = nil
      if context.hasCustomValidatorConfig {
        let domains = try Self.spiffeTrustDomains(context.customValidatorConfig)
        self.pem = domains.map(\.pem).joined()
        self.trustDomains = try Dictionary(
          uniqueKeysWithValues: domains.map {
            ($0.name, try PEMDocument.parseMultiple(pemString: $0.pem).map(Certificate.init(pemDocument:)))
          })
      } else {
        self.pem = String(decoding: context.trustedCa.inlineBytes, as: UTF8.self)
        self.trustDomains = nil
      }
      self.certificates = try PEMDocument.parseMultiple(pemString: self.pem).map(Certificate.init(pemDocument:))
      return
    case .genericSecret(let generic):
      // A bearer token (jwt-svid:<audience>) or a secret from files: a credential, never shown.
      let values = generic.secrets.isEmpty ? [generic.secret] : Array(generic.secrets.values)
      let bytes = values.reduce(0) { $0 + $1.inlineBytes.count + $1.inlineString.utf8.count }
      throw AgentError(
        .connection,
        "secret \(BoundedText(secret.name)) is a generic secret (a credential: \(bytes) bytes in \(values.count) "
          + "value(s)), which is not shown")
    case .sessionTicketKeys:
      throw AgentError(
        .connection, "secret \(BoundedText(secret.name)) holds session ticket keys, which are not shown")
    case nil:
      throw AgentError(.connection, "secret \(secret.name) has neither a certificate nor a validation context")
    }
    self.certificates = try PEMDocument.parseMultiple(pemString: self.pem).map(Certificate.init(pemDocument:))
  }

  /// The trust domains and their bundles' PEM in a SPIFFE validator configuration.
  private static func spiffeTrustDomains(
    _ validator: Envoy_Config_Core_V3_TypedExtensionConfig
  ) throws -> [(name: String, pem: String)] {
    guard validator.name == SPIFFEValidationContext.validatorName,
      validator.typedConfig.typeURL == SPIFFEValidationContext.validatorConfigTypeURL
    else {
      throw AgentError(
        .connection, "the validation context names the validator \(BoundedText(validator.name)), not the SPIFFE one")
    }
    let config = try Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig(
      unpackingAny: validator.typedConfig)
    return config.trustDomains.map {
      ($0.name, Self.withoutRevocationLists(String(decoding: $0.trustBundle.inlineBytes, as: UTF8.self)))
    }
  }

  /// A SPIFFE validator bundle's certificates: the revocation lists it may carry after them cut off.
  private static func withoutRevocationLists(_ pem: String) -> String {
    let begin = "-----BEGIN X509 CRL-----"
    let end = "-----END X509 CRL-----\n"
    var rest = Substring(pem)
    var kept = ""
    while let start = rest.range(of: begin) {
      kept += rest[..<start.lowerBound]
      guard let stop = rest[start.upperBound...].range(of: end) else { return kept }
      rest = rest[stop.upperBound...]
    }
    return kept + rest
  }

  package var spiffeID: SPIFFEID? {
    self.kind == .tlsCertificate ? self.certificates.first?.spiffeIDs.first : nil
  }

  /// What `sds-agent fetch --json` prints of it; the key only with `includeKey`.
  package func document(includeKey: Bool) -> Document {
    let first = self.certificates.first
    return Document(
      name: self.name,
      kind: self.kind.rawValue,
      spiffeID: self.spiffeID?.description,
      subject: first.map { $0.subject.description } ?? "",
      serial: first?.serialHex ?? "",
      notBefore: first.map { $0.notValidBefore.formatted(.iso8601) } ?? "",
      notAfter: first.map { $0.notValidAfter.formatted(.iso8601) } ?? "",
      chainLength: self.certificates.count,
      pem: self.pem,
      privateKey: includeKey ? self.privateKeyPEM : nil,
      validator: self.trustDomains == nil ? nil : "spiffe",
      trustDomains: self.trustDomains?.mapValues { $0.map(\.serialHex) })
  }

  /// A few lines for a terminal.
  package func text(includeKey: Bool) -> String {
    var lines = ["\(self.name) (\(self.kind.rawValue))"]
    for (index, certificate) in self.certificates.enumerated() {
      let role = self.kind == .validationContext ? "root" : (index == 0 ? "leaf" : "intermediate")
      lines.append("  \(role): subject=\"\(certificate.subject)\" serial=\(certificate.serialHex)")
      if let id = certificate.spiffeIDs.first, role == "leaf" { lines.append("    spiffe_id: \(id)") }
      lines.append(
        "    not_before: \(certificate.notValidBefore.formatted(.iso8601))  not_after: \(certificate.notValidAfter.formatted(.iso8601))"
      )
    }
    if self.kind == .tlsCertificate { lines.append("  chain_length: \(self.certificates.count)") }
    if includeKey, let key = self.privateKeyPEM { lines.append(key) }
    return lines.joined(separator: "\n")
  }
}
