import EnvoySDSProtos
import Foundation
import X509

/// Every trust bundle an identity is served: its own trust domain's and the federated ones,
/// each already encoded in the forms Envoy gets it in, so that a push to many streams never
/// encodes a bundle again.
package struct ServedTrust: Sendable {
  package typealias Context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext

  package let ownDomain: TrustDomainName
  package let own: TrustBundle
  package let federated: [TrustDomainName: TrustBundle]
  /// Federated domains that were removed while the agent runs: served as trusting nothing, since
  /// Envoy keeps an SDS secret it was once given until it is replaced.
  package let removed: Set<TrustDomainName>
  /// The own revocation lists served, in `ROOTCA`, the own domain's plain context and inside its
  /// SPIFFE validator bundle: one per own root, or none at all (Envoy then checks every CA of a
  /// chain, so a root without a list would fail all its leaves); through an intermediate, see
  /// `revocationCoverage`.
  package var revocationLists: [CertificateRevocationList] { self.revocationCoverage.all }
  /// Which lists each kind of own context carries.
  package let revocationCoverage: RevocationCoverage
  /// The lists of the CAs that sign leaves, as installed.
  private let issuerLists: [CertificateRevocationList]
  /// The intermediates and the operator's lists for them, when the CA signs through one.
  package let revocationChain: RevocationChain

  let rootCA: Context
  let plain: [TrustDomainName: Context]
  let spiffe: [TrustDomainName: Context]
  let all: Context

  package init(
    ownDomain: TrustDomainName, own: TrustBundle, federated: [TrustDomainName: TrustBundle] = [:],
    removed: Set<TrustDomainName> = [], revocationLists: [CertificateRevocationList] = [],
    revocationChain: RevocationChain = RevocationChain()
  ) throws(CertificateAuthorityError) {
    self.ownDomain = ownDomain
    self.own = own
    self.issuerLists = revocationLists
    self.revocationChain = revocationChain
    let coverage = RevocationCoverage(roots: own.roots, issuerLists: revocationLists, chain: revocationChain)
    self.revocationCoverage = coverage
    self.federated = federated.filter { $0.key != ownDomain }
    self.removed = removed.subtracting(self.federated.keys).subtracting([ownDomain])
    do {
      var bundles = self.federated
      bundles[ownDomain] = own
      var served = bundles
      for domain in self.removed {
        served[domain] = try Self.trustingNothing()
      }
      let crls = coverage.plain.map { $0.pemString + "\n" }.joined()
      let spiffeCRLs = coverage.spiffe.map { $0.pemString + "\n" }.joined()
      let ownCRLs = spiffeCRLs.isEmpty ? [:] : [ownDomain: spiffeCRLs]
      self.rootCA = try Self.plainContext(own, crls: crls, onlyLeaf: coverage.onlyVerifiesLeaf)
      self.plain = try Dictionary(
        uniqueKeysWithValues: served.map { domain, bundle in
          let isOwn = domain == ownDomain
          return (
            domain,
            try Self.plainContext(bundle, crls: isOwn ? crls : "", onlyLeaf: isOwn && coverage.onlyVerifiesLeaf)
          )
        })
      self.spiffe = try Dictionary(
        uniqueKeysWithValues: served.map { domain, bundle in
          (
            domain,
            try SPIFFEValidationContext.certificateValidationContext(
              trustBundles: [domain: bundle], revocationLists: ownCRLs)
          )
        })
      self.all = try SPIFFEValidationContext.certificateValidationContext(
        trustBundles: bundles, revocationLists: ownCRLs)
    } catch {
      throw CertificateAuthorityError(.invalidResponse, "the trust bundles cannot be encoded", cause: error)
    }
  }

  /// The same trust with another bundle for the own domain.
  package func replacingOwn(with own: TrustBundle) throws(CertificateAuthorityError) -> ServedTrust {
    try ServedTrust(
      ownDomain: self.ownDomain, own: own, federated: self.federated, removed: self.removed,
      revocationLists: self.issuerLists, revocationChain: self.revocationChain)
  }

  /// Every trust domain a `spiffe://` name may ask for.
  package var domains: Set<TrustDomainName> {
    Set(self.federated.keys).union(self.removed).union([self.ownDomain])
  }

  /// The validation context for `resource`, if it is a bundle this trust holds.
  package func context(for resource: SecretResource) -> Context? {
    switch resource {
    case .tlsCertificate, .onDemand, .refused, .file, .jwtSVID, .sessionTicketKeys: return nil
    case .validationContext: return self.rootCA
    case .allTrustDomains: return self.all
    case .trustDomain(let domain, let spiffeValidator):
      return spiffeValidator ? self.spiffe[domain] : self.plain[domain]
    }
  }

  private static func plainContext(_ bundle: TrustBundle, crls: String = "", onlyLeaf: Bool = false) throws -> Context {
    var context = Context()
    context.trustedCa.inlineBytes = Data(try bundle.pemString().utf8)
    if !crls.isEmpty {
      context.crl.inlineBytes = Data(crls.utf8)
      context.onlyVerifyLeafCertCrl = onlyLeaf
    }
    return context
  }

  /// A bundle no certificate chains to: a root whose key was thrown away at once.
  static func trustingNothing() throws -> TrustBundle {
    try self.nothing.get()
  }

  private static let nothing = Result<TrustBundle, any Error> {
    let root = try CAMaterial.generateRoot(
      trustDomain: "removed.invalid", now: Date(), commonName: "sds-agent: a removed trust domain, trusting nothing")
    return TrustBundle(roots: [root.certificate])
  }
}

extension ServedTrust: Equatable {
  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.ownDomain == rhs.ownDomain && lhs.own == rhs.own && lhs.federated == rhs.federated
      && lhs.removed == rhs.removed && lhs.revocationCoverage == rhs.revocationCoverage
  }
}
