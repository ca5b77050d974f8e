import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import SwiftProtobuf
import Testing
import X509

/// Which lists each own validation context carries. A root that signs leaves: its list
/// everywhere, every CA checked. An operator intermediate: its list in ROOTCA and the own plain
/// context with `only_verify_leaf_cert_crl`; in the SPIFFE validator's contexts (which check
/// the whole chain) only beside a root-signed list, otherwise none, and the gap is said.
@Suite struct RevocationCoverageTests {
  let now = Fixtures.now
  let domain = TrustDomainName(of: Fixtures.identity)

  func list(_ issuer: CAMaterial, number: Int = 1) throws -> CertificateRevocationList {
    try CertificateRevocationList(
      issuer: issuer.certificate, issuerKey: issuer.privateKey, number: number, entries: [], thisUpdate: self.now,
      nextUpdate: self.now.addingTimeInterval(3600))
  }

  /// The CRL blocks inside the own domain's bundle of a SPIFFE validator context.
  func spiffeCRLs(_ context: ServedTrust.Context?) throws -> Int {
    let context = try #require(context)
    let config = try Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig(
      unpackingAny: context.customValidatorConfig.typedConfig)
    let bundle = config.trustDomains.first { $0.name == self.domain.name }?.trustBundle.inlineBytes ?? Data()
    return String(decoding: bundle, as: UTF8.self).components(separatedBy: "-----BEGIN X509 CRL-----").count - 1
  }

  func plainCRLs(_ context: ServedTrust.Context?) -> Int {
    String(decoding: context?.crl.inlineBytes ?? Data(), as: UTF8.self)
      .components(separatedBy: "-----BEGIN X509 CRL-----").count - 1
  }

  @Test func aRootThatSignsLeavesHasItsListCheckedForEveryCA() throws {
    let trust = try ServedTrust(
      ownDomain: self.domain, own: Fixtures.material.trustBundle, revocationLists: [try self.list(Fixtures.material)])
    let rootCA = trust.context(for: .validationContext)
    #expect(self.plainCRLs(rootCA) == 1 && rootCA?.onlyVerifyLeafCertCrl == false)
    #expect(try self.spiffeCRLs(trust.context(for: .allTrustDomains)) == 1)
    #expect(trust.revocationCoverage.spiffeGap == nil)
  }

  @Test func withoutTheRootsListAnIntermediatesListIsCheckedOnLeavesInPlainContextsOnly() throws {
    let operatorCA = try OperatorIntermediate(now: self.now)
    let trust = try ServedTrust(
      ownDomain: self.domain, own: operatorCA.material.trustBundle,
      revocationLists: [try self.list(operatorCA.material)],
      revocationChain: RevocationChain(intermediates: operatorCA.material.chainAfterLeaf))
    for resource in [SecretResource.validationContext, .trustDomain(self.domain, spiffeValidator: false)] {
      let context = trust.context(for: resource)
      #expect(self.plainCRLs(context) == 1 && context?.onlyVerifyLeafCertCrl == true)
    }
    #expect(trust.revocationCoverage.plain.first?.isSigned(by: operatorCA.material.certificate) == true)
    #expect(try self.spiffeCRLs(trust.context(for: .allTrustDomains)) == 0)
    #expect(try self.spiffeCRLs(trust.context(for: .trustDomain(self.domain, spiffeValidator: true))) == 0)
    #expect(trust.revocationCoverage.spiffeGap?.contains("--ca-root-crl") == true)
  }

  @Test func withTheRootsListTheSPIFFEContextsCarryBothLists() throws {
    let operatorCA = try OperatorIntermediate(now: self.now)
    let rootList = try operatorCA.rootList(number: 7, now: self.now)
    let trust = try ServedTrust(
      ownDomain: self.domain, own: operatorCA.material.trustBundle,
      revocationLists: [try self.list(operatorCA.material)],
      revocationChain: RevocationChain(intermediates: operatorCA.material.chainAfterLeaf, lists: [rootList]))
    #expect(try self.spiffeCRLs(trust.context(for: .allTrustDomains)) == 2)
    #expect(try self.spiffeCRLs(trust.context(for: .trustDomain(self.domain, spiffeValidator: true))) == 2)
    let rootCA = trust.context(for: .validationContext)
    #expect(self.plainCRLs(rootCA) == 1 && rootCA?.onlyVerifyLeafCertCrl == true)
    #expect(trust.revocationLists.count == 2 && trust.revocationLists.contains(rootList))
    #expect(trust.revocationCoverage.spiffeGap == nil)
  }

  @Test func aListOfAnotherRootCoversNothing() throws {
    let operatorCA = try OperatorIntermediate(now: self.now)
    let stranger = try OperatorIntermediate(now: self.now)
    let trust = try ServedTrust(
      ownDomain: self.domain, own: operatorCA.material.trustBundle,
      revocationLists: [try self.list(operatorCA.material)],
      revocationChain: RevocationChain(
        intermediates: operatorCA.material.chainAfterLeaf, lists: [try stranger.rootList(number: 1, now: self.now)]))
    #expect(try self.spiffeCRLs(trust.context(for: .allTrustDomains)) == 0)
    #expect(trust.revocationCoverage.spiffeGap != nil)
  }

  @Test func theRootsListAloneServesNothing() throws {
    let operatorCA = try OperatorIntermediate(now: self.now)
    let trust = try ServedTrust(
      ownDomain: self.domain, own: operatorCA.material.trustBundle,
      revocationChain: RevocationChain(
        intermediates: operatorCA.material.chainAfterLeaf, lists: [try operatorCA.rootList(number: 1, now: self.now)]))
    #expect(trust.revocationLists.isEmpty)
    #expect(trust.context(for: .validationContext)?.hasCrl == false)
    #expect(try self.spiffeCRLs(trust.context(for: .allTrustDomains)) == 0)
  }

  @Test func theAgentSignsTheIntermediatesListUnlessItMayNot() throws {
    let operatorCA = try OperatorIntermediate(now: self.now)
    let roots = EmbeddedCA.Roots(signing: operatorCA.material)
    #expect(roots.notRevocable != nil && roots.crlIssuers.isEmpty)
    #expect(roots.notRevocable(throughIntermediates: true) == nil)
    #expect(roots.crlIssuers(throughIntermediates: true).map(\.certificate) == [operatorCA.material.certificate])
    #expect(roots.intermediates == [operatorCA.material.certificate])
    let noCRLSign = EmbeddedCA.Roots(signing: try OperatorIntermediate(now: self.now, crlSign: false).material)
    #expect(noCRLSign.notRevocable(throughIntermediates: true)?.contains("cRLSign") == true)
    #expect(noCRLSign.crlIssuers(throughIntermediates: true).isEmpty)
  }
}
