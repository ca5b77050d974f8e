import Crypto
import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftASN1
import Testing
import X509

/// What a Workload API caller receives, built from what its identity serves: the chain leaf
/// first, the key that matches the leaf (PKCS#8 DER), the roots of its domain and of the
/// federated ones, the own domain's CRLs.
@Suite struct X509SVIDResponseTests {
  let federatedDomain = try! TrustDomainName(parsing: "example.org")
  let federatedRoot = try! CAMaterial.generateRoot(trustDomain: "example.org", now: Fixtures.now)

  func trust(_ issued: IssuedSVID, crls: [CertificateRevocationList] = []) throws -> ServedTrust {
    try ServedTrust(
      ownDomain: TrustDomainName(of: issued.certifiedKey.identity), own: issued.trustBundle,
      federated: [self.federatedDomain: TrustBundle(roots: [self.federatedRoot.certificate])],
      revocationLists: crls)
  }

  @Test func theSVIDIsTheServedChainAndKeyWithTheBundles() throws {
    let issued = try Fixtures.issue()
    let svid = issued.certifiedKey
    let response = try SpiffeWorkload_X509SVIDResponse(svid: svid, trust: self.trust(issued))

    #expect(response.svids.count == 1)
    let message = try #require(response.svids.first)
    #expect(message.spiffeID == "spiffe://cluster.local/ns/default/sa/default")
    let chainDER = try svid.chain.flatMap { try $0.serializeAsPEM().derBytes }
    #expect(message.x509Svid == Data(chainDER))
    let leafDER = try svid.leaf.serializeAsPEM().derBytes
    #expect(try Certificate(derEncoded: Array(message.x509Svid.prefix(leafDER.count))) == svid.leaf)

    let key = try P256.Signing.PrivateKey(derRepresentation: message.x509SvidKey)
    #expect(Certificate.PublicKey(key.publicKey) == svid.leaf.publicKey)
    // PKCS#8, not SEC1: a `PRIVATE KEY` document holds it.
    let pkcs8 = PEMDocument(type: "PRIVATE KEY", derBytes: Array(message.x509SvidKey))
    #expect(try Certificate.PrivateKey(pemDocument: pkcs8).publicKey == svid.leaf.publicKey)

    let rootDER = try issued.trustBundle.roots.flatMap { try $0.serializeAsPEM().derBytes }
    #expect(message.bundle == Data(rootDER))
    #expect(message.hint.isEmpty)
    #expect(Array(response.federatedBundles.keys) == ["spiffe://example.org"])
    #expect(
      response.federatedBundles["spiffe://example.org"]
        == Data(try self.federatedRoot.certificate.serializeAsPEM().derBytes))
    #expect(response.crl.isEmpty)
  }

  @Test func theOwnDomainsCRLsAreCarriedAsDER() throws {
    let issued = try Fixtures.issue()
    let list = try CertificateRevocationList(
      issuer: Fixtures.material.certificate, issuerKey: Fixtures.material.privateKey, number: 3, entries: [],
      thisUpdate: Fixtures.now, nextUpdate: Fixtures.now.addingTimeInterval(3600))
    let response = try SpiffeWorkload_X509SVIDResponse(
      svid: issued.certifiedKey, trust: self.trust(issued, crls: [list]))
    #expect(response.crl == [Data(list.derBytes)])
    let bundles = try SpiffeWorkload_X509BundlesResponse(trust: self.trust(issued, crls: [list]))
    #expect(bundles.crl == [Data(list.derBytes)])
  }

  @Test func theBundlesAreEveryTrustDomainsRootsKeyedBySPIFFEID() throws {
    let issued = try Fixtures.issue()
    let bundles = try SpiffeWorkload_X509BundlesResponse(trust: self.trust(issued))
    #expect(bundles.bundles.keys.sorted() == ["spiffe://cluster.local", "spiffe://example.org"])
    #expect(
      bundles.bundles["spiffe://cluster.local"] == Data(try Fixtures.material.certificate.serializeAsPEM().derBytes))
    #expect(
      bundles.bundles["spiffe://example.org"] == Data(try self.federatedRoot.certificate.serializeAsPEM().derBytes))
  }

  @Test func anRSAKeyIsPKCS8Too() throws {
    let issued = try LocalCA(material: Fixtures.material).certify(
      identity: Fixtures.identity, privateKey: try WorkloadKeyType.rsa2048.generate(), ttl: .seconds(3600),
      now: Fixtures.now)
    let response = try SpiffeWorkload_X509SVIDResponse(svid: issued.certifiedKey, trust: self.trust(issued))
    let der = Array(try #require(response.svids.first).x509SvidKey)
    let document = PEMDocument(type: "PRIVATE KEY", derBytes: der)
    #expect(try Certificate.PrivateKey(pemDocument: document).publicKey == issued.certifiedKey.leaf.publicKey)
  }
}
