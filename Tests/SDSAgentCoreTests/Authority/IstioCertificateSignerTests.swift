import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import SDSAgentCore
import SwiftASN1
import Testing
import X509

/// The CA server's gRPC behaviour over the in-process transport, with a fake authenticator.
@Suite struct IstioCertificateSignerTests {
  struct TokenTable: CallerAuthenticator {
    func authenticate(bearerToken: String) async -> CallerAuthentication {
      bearerToken == "good" ? .authenticated(Fixtures.identity) : .refused("unknown token \(bearerToken)")
    }
  }

  func withSigner<R: Sendable>(
    ca: EmbeddedCA = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material)),
    _ body: (Istio_V1_Auth_IstioCertificateService.Client<InProcessTransport.Client>) async throws -> R
  ) async throws -> R {
    let signer = IstioCertificateSigner(
      ca: ca,
      authenticator: TokenTable(),
      maximumTTL: .seconds(3600),
      logger: Logger(label: "test"),
      now: { Fixtures.now }
    )
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: [signer]) { _ in
      try await withGRPCClient(transport: transport.client) { client in
        try await body(Istio_V1_Auth_IstioCertificateService.Client(wrapping: client))
      }
    }
  }

  func request(ttl: Int64 = 600) throws -> (Istio_V1_Auth_IstioCertificateRequest, WorkloadPrivateKey) {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    var request = Istio_V1_Auth_IstioCertificateRequest()
    request.csr = try WorkloadCSR.make(identity: Fixtures.identity, privateKey: key).serializeAsPEM().pemString
    request.validityDuration = ttl
    return (request, key)
  }

  @Test func signsAndAnswersInBothStyles() async throws {
    let (request, key) = try self.request(ttl: 86400 * 30)
    let response = try await self.withSigner { client in
      try await client.createCertificate(request, metadata: ["authorization": "Bearer good"])
    }
    #expect(response.certChain.count == 2)
    #expect(response.rootCert.caCert.count == 1)
    let issued = try await response.validatedSVID(identity: Fixtures.identity, privateKey: key, now: Fixtures.now)
    // The lifetime is capped at the maximum TTL.
    #expect(issued.certifiedKey.notAfter == Fixtures.now.addingTimeInterval(3600))
    var legacy = response
    legacy.clearRootCert()
    _ = try await legacy.validatedSVID(identity: Fixtures.identity, privateKey: key, now: Fixtures.now)
  }

  @Test func answersWithEveryRootOfARotationInBothStyles() async throws {
    let next = try CAMaterial.generateRoot(
      trustDomain: "cluster.local", now: Fixtures.now.addingTimeInterval(1), commonName: "next")
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material, next: next))
    let (request, key) = try self.request()
    let response = try await self.withSigner(ca: ca) { client in
      try await client.createCertificate(request, metadata: ["authorization": "Bearer good"])
    }
    let bundle = [Fixtures.material.certificate, next.certificate]
    // cert_chain: the leaf, then the whole bundle as its last element, as istiod answers.
    #expect(response.certChain.count == 2)
    #expect(try PEMDocument.parseMultiple(pemString: response.certChain[1]).map(Certificate.init) == bundle)
    #expect(try response.rootCert.caCert.map { try Certificate(pemEncoded: $0) } == bundle)
    // The old root still signs during the overlap; both styles validate against the bundle.
    let issued = try await response.validatedSVID(identity: Fixtures.identity, privateKey: key, now: Fixtures.now)
    #expect(issued.certifiedKey.chain[0].issuer == Fixtures.material.certificate.subject)
    #expect(issued.trustBundle.roots == bundle)
    var legacy = response
    legacy.clearRootCert()
    let legacyIssued = try await legacy.validatedSVID(identity: Fixtures.identity, privateKey: key, now: Fixtures.now)
    #expect(legacyIssued.trustBundle.roots == bundle)
    // After the switch the new root signs, and the old one is still in the bundle.
    ca.install(EmbeddedCA.Roots(signing: next, previous: Fixtures.material.certificate))
    let switched = try await self.withSigner(ca: ca) { client in
      try await client.createCertificate(request, metadata: ["authorization": "Bearer good"])
    }
    let afterSwitch = try await switched.validatedSVID(
      identity: Fixtures.identity, privateKey: key, now: Fixtures.now.addingTimeInterval(2))
    #expect(afterSwitch.certifiedKey.chain[0].issuer == next.certificate.subject)
    #expect(afterSwitch.trustBundle.roots == bundle)
  }

  @Test(arguments: [
    (nil, "no bearer token"),
    ("Bearer forged", "unknown token forged"),
  ])
  func refusesCallersWithoutAGoodToken(authorization: String?, message: String) async throws {
    let (request, _) = try self.request()
    var metadata = Metadata()
    if let authorization { metadata.addString(authorization, forKey: "authorization") }
    let code = RPCError.Code.unauthenticated
    _ = try await self.withSigner { client in
      await #expect {
        _ = try await client.createCertificate(request, metadata: metadata)
      } throws: { error in
        let error = error as! RPCError
        return error.code == code && error.message.contains(message)
      }
    }
  }

  @Test func aRefusalQuotesTheRequestCutShort() async throws {
    let (request, _) = try self.request()
    let token = String(repeating: "t", count: 100_000)
    _ = try await self.withSigner { client in
      await #expect {
        _ = try await client.createCertificate(request, metadata: ["authorization": "Bearer \(token)"])
      } throws: { error in
        let error = error as! RPCError
        return error.code == .unauthenticated && error.message.contains("unknown token ttt")
          && error.message.utf8.count < 1024
      }
    }
  }

  @Test func refusesACSRForAnotherIdentityAndGarbage() async throws {
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/other/sa/other")
    var forbidden = Istio_V1_Auth_IstioCertificateRequest()
    forbidden.csr = try WorkloadCSR.make(identity: other, privateKey: try WorkloadKeyType.ecdsaP256.generate())
      .serializeAsPEM().pemString
    var garbage = Istio_V1_Auth_IstioCertificateRequest()
    garbage.csr = "garbage"
    _ = try await self.withSigner { client in
      await #expect {
        _ = try await client.createCertificate(forbidden, metadata: ["authorization": "Bearer good"])
      } throws: { error in
        (error as! RPCError).code == .permissionDenied && "\(error)".contains("ns/other")
      }
      await #expect {
        _ = try await client.createCertificate(garbage, metadata: ["authorization": "Bearer good"])
      } throws: { error in
        (error as! RPCError).code == .invalidArgument
      }
    }
  }
}
