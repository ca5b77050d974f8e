import Crypto
import Foundation
import SDSAgentCore
import SwiftASN1
import Testing
@_spi(FixedExpiryValidationTime) import X509

@Suite struct LocalCATests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  func verify(_ issued: IssuedSVID, at date: Date, expecting identity: SPIFFEID?) async -> CertificateValidationResult {
    var verifier = Verifier(rootCertificates: CertificateStore(issued.trustBundle.roots)) {
      RFC5280Policy(fixedExpiryValidationTime: date)
      SPIFFELeafPolicy(expectedIdentity: identity)
    }
    return await verifier.validate(
      leaf: issued.certifiedKey.leaf,
      intermediates: CertificateStore(Array(issued.certifiedKey.chain.dropFirst()))
    )
  }

  @Test(arguments: WorkloadKeyType.allCases)
  func issuesAnSVIDThatVerifies(keyType: WorkloadKeyType) async throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let issued = try ca.certify(
      identity: self.identity, privateKey: try keyType.generate(), ttl: .seconds(3600), now: self.now)
    let result = await self.verify(issued, at: self.now, expecting: self.identity)
    guard case .validCertificate(let chain) = result else {
      Issue.record("did not verify: \(result)")
      return
    }
    #expect(chain.count == 2)
  }

  @Test func leafHasTheSPIFFEProfile() throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let issued = try ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(3600), now: self.now)
    let leaf = issued.certifiedKey.leaf
    #expect(leaf.subject == DistinguishedName())
    let san = try #require(leaf.extensions[oid: .X509ExtensionID.subjectAlternativeName])
    #expect(san.critical)
    #expect(leaf.spiffeIDs == [self.identity])
    let keyUsage = try #require(try leaf.extensions.keyUsage)
    #expect(keyUsage.digitalSignature && keyUsage.keyEncipherment && !keyUsage.keyCertSign)
    let eku = try #require(try leaf.extensions.extendedKeyUsage)
    #expect(eku.contains(.serverAuth) && eku.contains(.clientAuth))
    #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
    #expect(leaf.serialNumber.bytes.count >= 8)
    #expect(leaf.notValidBefore < self.now)
    #expect(leaf.notValidAfter == self.now.addingTimeInterval(3600))
    // PKCS#8, the PEM label Envoy expects (no key material here: only the label).
    #expect(issued.certifiedKey.privateKey.pkcs8PEM.hasPrefix("-----BEGIN " + "PRIVATE KEY-----"))
  }

  @Test func serialsDiffer() throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let serials = try (0..<20).map { _ in
      try ca.certify(
        identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60), now: self.now
      )
      .certifiedKey.leaf.serialNumber
    }
    #expect(Set(serials).count == 20)
  }

  @Test func validityNeverOutlivesTheCA() throws {
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now, validity: .seconds(600))
    let ca = LocalCA(material: material)
    let issued = try ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(86400), now: self.now
    )
    #expect(issued.certifiedKey.notAfter == material.certificate.notValidAfter)
  }

  @Test func anExpiredCARefusesToSign() throws {
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now, validity: .seconds(600))
    let ca = LocalCA(material: material)
    #expect {
      try ca.certify(
        identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60),
        now: self.now.addingTimeInterval(3600))
    } throws: { error in
      (error as? CertificateAuthorityError)?.code == .caUnusable
    }
  }

  @Test func theSPIFFEPolicyRejectsAnotherIdentity() async throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let issued = try ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(3600), now: self.now)
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/backend")
    let result = await self.verify(issued, at: self.now, expecting: other)
    guard case .couldNotValidate = result else {
      Issue.record("verified for the wrong identity")
      return
    }
  }

  @Test func anExpiredLeafDoesNotVerify() async throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let issued = try ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60), now: self.now)
    let result = await self.verify(issued, at: self.now.addingTimeInterval(61), expecting: self.identity)
    guard case .couldNotValidate = result else {
      Issue.record("an expired leaf verified")
      return
    }
  }

  @Test func anIntermediateCAIsServedInTheChain() async throws {
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let intermediateKey = Certificate.PrivateKey(P256Key.make())
    let intermediate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: intermediateKey.publicKey,
      notValidBefore: self.now.addingTimeInterval(-60),
      notValidAfter: self.now.addingTimeInterval(86400),
      issuer: root.certificate.subject,
      subject: try DistinguishedName { CommonName("intermediate") },
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true))
        SubjectKeyIdentifier(hash: intermediateKey.publicKey)
      },
      issuerPrivateKey: root.privateKey
    )
    let material = try CAMaterial(certificate: intermediate, privateKey: intermediateKey, chain: [root.certificate])
    #expect(material.trustBundle.roots == [root.certificate])
    let issued = try LocalCA(material: material).certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60), now: self.now)
    #expect(issued.certifiedKey.chain.count == 2)
    guard case .validCertificate(let chain) = await self.verify(issued, at: self.now, expecting: self.identity) else {
      Issue.record("chain through the intermediate did not verify")
      return
    }
    #expect(chain.count == 3)
  }

  @Test func caMaterialRejectsAMismatchedKey() throws {
    let root = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let otherKey = Certificate.PrivateKey(P256Key.make())
    #expect(throws: CAMaterialError.self) {
      try CAMaterial(certificate: root.certificate, privateKey: otherKey, chain: [])
    }
  }

  @Test func certifiedKeyRejectsAKeyThatIsNotTheLeafs() throws {
    let ca = LocalCA(material: try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now))
    let issued = try ca.certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(60), now: self.now)
    #expect(throws: CertificateAuthorityError.self) {
      try CertifiedKey(
        identity: self.identity, chain: issued.certifiedKey.chain, privateKey: try WorkloadKeyType.ecdsaP256.generate(),
        issuedAt: self.now)
    }
  }
}

enum P256Key {
  static func make() -> P256.Signing.PrivateKey { P256.Signing.PrivateKey() }
}
