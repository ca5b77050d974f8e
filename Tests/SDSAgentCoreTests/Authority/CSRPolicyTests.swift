import Foundation
import SDSAgentCore
import SwiftASN1
import Testing
import X509

@Suite struct CSRPolicyTests {
  let caller = Fixtures.identity

  func pem(_ build: (Certificate.PrivateKey) throws -> CertificateSigningRequest) throws -> (
    String, Certificate.PublicKey
  ) {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    return (try build(key.key).serializeAsPEM().pemString, key.publicKey)
  }

  func csr(subject: DistinguishedName = DistinguishedName(), names: [GeneralName]) throws -> (
    String, Certificate.PublicKey
  ) {
    try self.pem { key in
      try CertificateSigningRequest(
        version: .v1,
        subject: subject,
        privateKey: key,
        attributes: CertificateSigningRequest.Attributes([
          .init(ExtensionRequest(extensions: try Certificate.Extensions { Critical(SubjectAlternativeNames(names)) }))
        ])
      )
    }
  }

  @Test func theAgentsOwnCSRIsSigned() throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let pem = try WorkloadCSR.make(identity: self.caller, privateKey: key).serializeAsPEM().pemString
    #expect(CSRPolicy.evaluate(pem: pem, caller: self.caller) == .sign(publicKey: key.publicKey))
  }

  @Test func anotherIdentityIsForbidden() throws {
    let (pem, _) = try self.csr(names: [.uniformResourceIdentifier("spiffe://cluster.local/ns/kube-system/sa/admin")])
    guard case .forbidden(let reason) = CSRPolicy.evaluate(pem: pem, caller: self.caller) else {
      Issue.record("not forbidden")
      return
    }
    #expect(reason.contains("kube-system"))
  }

  @Test func aDNSNameIsForbidden() throws {
    let (pem, _) = try self.csr(names: [
      .uniformResourceIdentifier(self.caller.description), .dnsName("evil.example.com"),
    ])
    guard case .forbidden(let reason) = CSRPolicy.evaluate(pem: pem, caller: self.caller) else {
      Issue.record("not forbidden")
      return
    }
    #expect(reason.contains("evil.example.com"))
  }

  @Test func aCommonNameIsForbidden() throws {
    let (pem, _) = try self.csr(
      subject: try DistinguishedName { CommonName("admin") },
      names: [.uniformResourceIdentifier(self.caller.description)]
    )
    guard case .forbidden(let reason) = CSRPolicy.evaluate(pem: pem, caller: self.caller) else {
      Issue.record("not forbidden")
      return
    }
    #expect(reason.contains("common name"))
  }

  @Test func garbageIsMalformed() {
    guard
      case .malformed = CSRPolicy.evaluate(
        pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", caller: self.caller)
    else {
      Issue.record("not malformed")
      return
    }
  }

  @Test func serviceAccountSubjectsMapToIstioIDs() throws {
    let account = try #require(ServiceAccount(subject: "system:serviceaccount:web:frontend"))
    #expect(
      try account.spiffeID(trustDomain: "cluster.local").description == "spiffe://cluster.local/ns/web/sa/frontend")
    #expect(ServiceAccount(subject: "system:serviceaccount:web") == nil)
    #expect(ServiceAccount(subject: "user:alice") == nil)
  }
}
