import EnvoySDSProtos
import Foundation

/// What the agent serves right now, with a revision per resource. Revisions come from one
/// counter, so the highest revision among a set of resources changes exactly when one of
/// them changes.
///
/// Each resource is also kept as the Envoy message it is served as, encoded once per revision:
/// a push to thousands of streams never re-encodes a certificate.
public struct ServedSecrets: Sendable {
  /// The workload's SVID; `nil` before the first issuance or once it expired unrenewed.
  public private(set) var svid: CertifiedKey?
  public internal(set) var svidRevision: UInt64
  public private(set) var trustBundle: TrustBundle?
  public internal(set) var trustBundleRevision: UInt64
  private(set) var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate?
  private(set) var validationContext: Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext?

  public static let empty = ServedSecrets(svidRevision: 0, trustBundleRevision: 0)

  private init(svidRevision: UInt64, trustBundleRevision: UInt64) {
    self.svidRevision = svidRevision
    self.trustBundleRevision = trustBundleRevision
  }

  mutating func setSVID(_ svid: CertifiedKey) throws(CertificateAuthorityError) {
    var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
    do {
      certificate.certificateChain.inlineBytes = Data(try svid.chain.map { try $0.pemString() + "\n" }.joined().utf8)
    } catch {
      throw CertificateAuthorityError(.invalidResponse, "the certificate chain cannot be encoded as PEM", cause: error)
    }
    certificate.privateKey.inlineBytes = Data(svid.privateKey.pkcs8PEM.utf8)
    self.svid = svid
    self.tlsCertificate = certificate
  }

  mutating func setTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
    var context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
    do {
      context.trustedCa.inlineBytes = Data(try bundle.pemString().utf8)
    } catch {
      throw CertificateAuthorityError(.invalidResponse, "the trust bundle cannot be encoded as PEM", cause: error)
    }
    self.trustBundle = bundle
    self.validationContext = context
  }

  mutating func adoptSVID(from other: ServedSecrets) {
    self.svid = other.svid
    self.tlsCertificate = other.tlsCertificate
  }

  mutating func adoptTrustBundle(from other: ServedSecrets) {
    self.trustBundle = other.trustBundle
    self.validationContext = other.validationContext
  }

  mutating func clearSVID() {
    self.svid = nil
    self.tlsCertificate = nil
  }

  /// These secrets without an SVID that is no longer valid at `date`.
  public func servable(at date: Date) -> ServedSecrets {
    guard let svid = self.svid, !svid.isValid(at: date) else { return self }
    var served = self
    served.clearSVID()
    return served
  }

  public func revision(of resource: SecretResource) -> UInt64 {
    switch resource {
    case .tlsCertificate: return self.svidRevision
    case .validationContext: return self.trustBundleRevision
    }
  }

  public func isAvailable(_ resource: SecretResource) -> Bool {
    switch resource {
    case .tlsCertificate: return self.svid != nil
    case .validationContext: return self.trustBundle != nil
    }
  }
}
