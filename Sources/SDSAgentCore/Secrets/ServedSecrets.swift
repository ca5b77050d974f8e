import EnvoySDSProtos
import Foundation

/// What one identity's streams are served right now: the identity's own secrets joined with the
/// node's shared rows, with a revision per resource. Revisions come from one counter (the
/// node's), so the highest revision among a set of resources changes exactly when one of them
/// changes.
///
/// Each resource is also kept as the Envoy message it is served as, encoded once per revision:
/// a push to thousands of streams never re-encodes a certificate. A copy is two retains.
package struct ServedSecrets: Sendable {
  private(set) var identity: IdentitySecrets
  let shared: SharedSecrets

  init(identity: IdentitySecrets, shared: SharedSecrets) {
    self.identity = identity
    self.shared = shared
  }

  package static let empty = ServedSecrets(identity: .empty, shared: .empty)

  /// The trust installed for the node, or else the one the identity's issuance came with.
  private var trustRow: TrustRow {
    // Read in place: every stream reads revisions on every change of its secrets.
    _read {
      if self.shared.trust.trust != nil {
        yield self.shared.trust
      } else {
        yield self.identity.trust
      }
    }
  }

  /// The workload's SVID; `nil` before the first issuance or once it expired unrenewed.
  package var svid: CertifiedKey? { _read { yield self.identity.svid } }
  package var svidRevision: UInt64 { self.identity.svidRevision }
  /// The trust bundles: the own domain's and the federated ones.
  package var trust: ServedTrust? { _read { yield self.trustRow.trust } }
  /// Changes with the own trust domain's bundle.
  package var trustBundleRevision: UInt64 { self.trustRow.bundleRevision }
  /// Changes with the federated bundles.
  package var federationRevision: UInt64 { self.trustRow.federationRevision }
  var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate? {
    _read { yield self.identity.tlsCertificate }
  }
  /// Secrets read from files, by name, each with the revision it was served at.
  package var files: [String: (content: FileSecretContent, revision: UInt64)] { self.shared.files }
  /// Changes with any file secret.
  package var filesRevision: UInt64 { self.shared.filesRevision }
  /// Changes with any on-demand certificate.
  package var onDemandRevision: UInt64 { self.shared.onDemandRevision }
  /// Server certificates minted on demand, by name, each with the revision it was served at.
  package var onDemand: [DNSName: (certificate: ServerCertificate, revision: UInt64)] { self.shared.onDemand }

  /// The JWT bundles: the own domain's and the federated ones with JWT keys.
  package var jwtBundles: JWTBundleSet { self.shared.jwtBundles }
  /// Changes with any JWT bundle.
  package var jwtBundlesRevision: UInt64 { self.shared.jwtBundlesRevision }
  /// The identity's JWT-SVIDs by audience (`jwt-svid:<audience>`), each with the revision it was
  /// served at.
  package var jwtSVIDs: [JWTAudience: (svid: JWTSVID, revision: UInt64)] { self.identity.jwtSVIDs.tokens }

  /// Session ticket keys by name, each with the revision it was served at.
  package var sessionTicketKeys: [String: (keys: SessionTicketKeys, revision: UInt64)] {
    self.shared.sessionTicketKeys
  }

  /// The own trust domain's bundle (`ROOTCA`).
  package var trustBundle: TrustBundle? { self.trust?.own }

  /// Whether there is an SVID and `date` is outside its validity.
  package func svidExpired(at date: Date) -> Bool { self.identity.svidExpired(at: date) }

  /// These secrets without an SVID that is no longer valid at `date`, nor a JWT-SVID expired by
  /// then.
  package func servable(at date: Date) -> ServedSecrets {
    let svidExpired = self.svidExpired(at: date)
    let tokenExpired = self.identity.jwtSVIDs.hasExpired(at: date)
    guard svidExpired || tokenExpired else { return self }
    var served = self
    if svidExpired { served.identity.clearSVID(revision: nil) }
    if tokenExpired { served.identity.dropJWTSVIDs(expiredAt: date) }
    return served
  }

  package func revision(of resource: SecretResource) -> UInt64 {
    switch resource {
    case .tlsCertificate: return self.svidRevision
    case .validationContext: return self.trustBundleRevision
    case .allTrustDomains:
      let trust = self.trustRow
      return max(trust.bundleRevision, trust.federationRevision)
    case .trustDomain(let domain, _):
      let trust = self.trustRow
      return domain == trust.trust?.ownDomain ? trust.bundleRevision : trust.federationRevision
    case .onDemand(let name): return self.onDemand[name]?.revision ?? 0
    case .refused: return 0
    case .file(let name): return self.files[name]?.revision ?? 0
    case .jwtSVID(let audience): return self.jwtSVIDs[audience]?.revision ?? 0
    case .sessionTicketKeys(let name): return self.sessionTicketKeys[name]?.revision ?? 0
    }
  }

  package func isAvailable(_ resource: SecretResource) -> Bool {
    switch resource {
    case .tlsCertificate: return self.svid != nil
    case .onDemand(let name): return self.onDemand[name] != nil
    case .refused: return true
    case .file(let name): return self.files[name] != nil
    case .jwtSVID(let audience): return self.jwtSVIDs[audience] != nil
    case .sessionTicketKeys(let name): return self.sessionTicketKeys[name] != nil
    default: return self.trust?.context(for: resource) != nil
    }
  }
}
