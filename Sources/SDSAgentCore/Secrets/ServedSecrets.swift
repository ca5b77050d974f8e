import EnvoySDSProtos
import Foundation

/// What the agent serves right now, with a revision per resource. Revisions come from one
/// counter, so the highest revision among a set of resources changes exactly when one of
/// them changes.
///
/// Each resource is also kept as the Envoy message it is served as, encoded once per revision:
/// a push to thousands of streams never re-encodes a certificate.
public struct ServedSecrets: Sendable {
  /// The secrets themselves, behind one immutable reference: every stream copies the served
  /// secrets for every push, and a copy is then one retain; a change (rare) makes a new one.
  private struct Secrets: Sendable {
    var svid: CertifiedKey?
    var trust: ServedTrust?
    var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate?
    var files: [String: (content: FileSecretContent, revision: UInt64)] = [:]
    var onDemand: [DNSName: (certificate: ServerCertificate, revision: UInt64)] = [:]
  }

  private final class Storage: Sendable {
    let secrets: Secrets

    init(_ secrets: Secrets) {
      self.secrets = secrets
    }
  }

  private var storage = Storage(Secrets())

  private var secrets: Secrets {
    get { self.storage.secrets }
    set { self.storage = Storage(newValue) }
  }

  /// The workload's SVID; `nil` before the first issuance or once it expired unrenewed.
  public var svid: CertifiedKey? { self.storage.secrets.svid }
  public internal(set) var svidRevision: UInt64
  /// The trust bundles: the own domain's and the federated ones.
  public var trust: ServedTrust? { self.storage.secrets.trust }
  /// Changes with the own trust domain's bundle.
  public internal(set) var trustBundleRevision: UInt64
  /// Changes with the federated bundles.
  public internal(set) var federationRevision: UInt64
  var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate? {
    self.storage.secrets.tlsCertificate
  }
  /// Secrets read from files, by name, each with the revision it was served at.
  public var files: [String: (content: FileSecretContent, revision: UInt64)] { self.storage.secrets.files }
  /// Changes with any file secret.
  public internal(set) var filesRevision: UInt64 = 0
  /// Changes with any on-demand certificate.
  public internal(set) var onDemandRevision: UInt64 = 0
  /// Server certificates minted on demand, by name, each with the revision it was served at.
  public var onDemand: [DNSName: (certificate: ServerCertificate, revision: UInt64)] {
    self.storage.secrets.onDemand
  }

  public static let empty = ServedSecrets(svidRevision: 0, trustBundleRevision: 0, federationRevision: 0)

  private init(svidRevision: UInt64, trustBundleRevision: UInt64, federationRevision: UInt64) {
    self.svidRevision = svidRevision
    self.trustBundleRevision = trustBundleRevision
    self.federationRevision = federationRevision
  }

  /// The own trust domain's bundle (`ROOTCA`).
  public var trustBundle: TrustBundle? { self.trust?.own }

  mutating func setSVID(_ svid: CertifiedKey) throws(CertificateAuthorityError) {
    var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
    do {
      certificate.certificateChain.inlineBytes = Data(try svid.chain.map { try $0.pemString() + "\n" }.joined().utf8)
    } catch {
      throw CertificateAuthorityError(.invalidResponse, "the certificate chain cannot be encoded as PEM", cause: error)
    }
    certificate.privateKey.inlineBytes = Data(svid.privateKey.pkcs8PEM.utf8)
    self.secrets.svid = svid
    self.secrets.tlsCertificate = certificate
  }

  mutating func adoptSVID(from other: ServedSecrets) {
    self.secrets.svid = other.svid
    self.secrets.tlsCertificate = other.tlsCertificate
  }

  /// Serves `trust` under `revision`, moving only the revisions of what changed.
  mutating func setTrust(_ trust: ServedTrust, revision: UInt64) {
    let old = self.trust
    guard old != trust else { return }
    self.secrets.trust = trust
    if old?.own != trust.own || old?.ownDomain != trust.ownDomain {
      self.trustBundleRevision = revision
    }
    if old?.federated != trust.federated || old?.removed != trust.removed {
      self.federationRevision = revision
    }
  }

  /// Serves `certificates` from now on; a name whose certificate changed gets `revision`.
  mutating func setOnDemand(_ certificates: [DNSName: ServerCertificate], revision: UInt64) -> Bool {
    var changed = false
    var next: [DNSName: (certificate: ServerCertificate, revision: UInt64)] = [:]
    for (name, certificate) in certificates {
      if let current = self.onDemand[name], current.certificate.serial == certificate.serial {
        next[name] = current
      } else {
        next[name] = (certificate, revision)
        changed = true
      }
    }
    changed = changed || next.count != self.onDemand.count
    self.secrets.onDemand = next
    return changed
  }

  /// Serves these file secrets from now on; a name whose content changed gets `revision`.
  mutating func setFiles(_ contents: [String: FileSecretContent], revision: UInt64) -> Bool {
    var changed = contents.count != self.files.count
    var next: [String: (content: FileSecretContent, revision: UInt64)] = [:]
    for (name, content) in contents {
      if let current = self.files[name], current.content == content {
        next[name] = current
      } else {
        next[name] = (content, revision)
        changed = true
      }
    }
    self.secrets.files = next
    return changed
  }

  mutating func clearSVID() {
    self.secrets.svid = nil
    self.secrets.tlsCertificate = nil
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
    case .allTrustDomains: return max(self.trustBundleRevision, self.federationRevision)
    case .trustDomain(let domain, _):
      return domain == self.trust?.ownDomain ? self.trustBundleRevision : self.federationRevision
    case .onDemand(let name): return self.onDemand[name]?.revision ?? 0
    case .refused: return 0
    case .file(let name): return self.files[name]?.revision ?? 0
    }
  }

  public func isAvailable(_ resource: SecretResource) -> Bool {
    switch resource {
    case .tlsCertificate: return self.svid != nil
    case .onDemand(let name): return self.onDemand[name] != nil
    case .refused: return true
    case .file(let name): return self.files[name] != nil
    default: return self.trust?.context(for: resource) != nil
    }
  }
}
