import EnvoySDSProtos
import Foundation
import SDSAgentCore
import Testing
import X509

@Suite struct IstioResponseValidationTests {
  let identity = Fixtures.identity
  let ca = LocalCA(material: Fixtures.material)

  func response(
    for key: WorkloadPrivateKey,
    as identity: SPIFFEID? = nil,
    at date: Date = Fixtures.now,
    rootsApart: Bool,
    ca: LocalCA? = nil,
    returnedRoots: [Certificate]? = nil
  ) throws -> Istio_V1_Auth_IstioCertificateResponse {
    let signer = ca ?? self.ca
    let chain = try signer.sign(
      publicKey: key.publicKey, identity: identity ?? self.identity, ttl: .seconds(60), now: date)
    let roots = try (returnedRoots ?? signer.material.trustBundle.roots).map { try $0.pemString() }
    var response = Istio_V1_Auth_IstioCertificateResponse()
    response.certChain = try chain.map { try $0.pemString() }
    if rootsApart {
      response.rootCert.caCert = roots
    } else {
      response.certChain.append(roots.joined(separator: "\n"))
    }
    return response
  }

  @Test(arguments: [false, true])
  func acceptsBothStyles(rootsApart: Bool) async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let issued = try await self.response(for: key, rootsApart: rootsApart)
      .validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    #expect(issued.certifiedKey.chain.count == 1)
    #expect(issued.trustBundle == Fixtures.material.trustBundle)
  }

  @Test func rejectsACertificateForAnotherKey() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let response = try self.response(for: try WorkloadKeyType.ecdsaP256.generate(), rootsApart: false)
    await #expect {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    } throws: { error in
      "\(error)".contains("public key does not match")
    }
  }

  @Test func rejectsACertificateForAnotherIdentity() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/other/sa/other")
    let response = try self.response(for: key, as: other, rootsApart: false)
    await #expect {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    } throws: { error in
      "\(error)".contains("ns/other")
    }
  }

  @Test func rejectsAnExpiredChain() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let response = try self.response(for: key, at: Fixtures.now.addingTimeInterval(-3600), rootsApart: true)
    await #expect {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    } throws: { error in
      "\(error)".contains("does not verify")
    }
  }

  @Test func rejectsAChainThatDoesNotReachTheReturnedRoots() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let stranger = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now)
    let response = try self.response(for: key, rootsApart: true, returnedRoots: stranger.trustBundle.roots)
    await #expect {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    } throws: { error in
      "\(error)".contains("does not verify")
    }
  }

  @Test func rejectsAResponseWithoutRoots() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    var response = try self.response(for: key, rootsApart: true)
    response.clearRootCert()
    await #expect {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    } throws: { error in
      "\(error)".contains("no root")
    }
  }

  @Test func rejectsGarbage() async throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    var response = Istio_V1_Auth_IstioCertificateResponse()
    response.certChain = ["not a certificate"]
    await #expect(throws: CertificateAuthorityError.self) {
      try await response.validatedSVID(identity: self.identity, privateKey: key, now: Fixtures.now)
    }
  }
}
