import Crypto
import Foundation
import SDSAgentCore
import Testing
import X509

/// A validation context's own CRL file is served as the file holds it; the agent only warns when
/// the file would make Envoy refuse every client: a list no CA certificate of the context signed,
/// one signed by a CA whose keyUsage lacks cRLSign, or one past its nextUpdate.
@Suite struct FileSecretCRLWarningTests {
  static let now = Fixtures.now
  let ca = try! CAMaterial.generateRoot(trustDomain: "example.org", now: now, commonName: "clients")

  func list(
    by issuer: Certificate, key: Certificate.PrivateKey, nextUpdate: Date = now.addingTimeInterval(3600)
  ) throws -> CertificateRevocationList {
    try CertificateRevocationList(
      issuer: issuer, issuerKey: key, number: 1, entries: [], thisUpdate: Self.now.addingTimeInterval(-60),
      nextUpdate: nextUpdate)
  }

  func warning(_ list: CertificateRevocationList, ca: Certificate? = nil) throws -> String? {
    FileSecretContent.crlWarning(
      caPEM: try (ca ?? self.ca.certificate).pemString(), crl: Data(list.pemString.utf8), now: Self.now)
  }

  @Test func aListOfTheContextsCAValidNowIsServedWithoutAWarning() throws {
    let list = try self.list(by: self.ca.certificate, key: self.ca.privateKey)
    #expect(try self.warning(list) == nil)
    let content = try FileSecretContent.validationContext(
      caPEM: try self.ca.certificate.pemString(), crl: Data(list.pemString.utf8), now: Self.now)
    #expect(content.kind == .validationContext)
  }

  @Test func aListSignedByAnotherCAIsWarnedAbout() throws {
    let other = try CAMaterial.generateRoot(trustDomain: "example.org", now: Self.now, commonName: "other")
    let warning = try #require(try self.warning(try self.list(by: other.certificate, key: other.privateKey)))
    #expect(warning.contains("signed by none of the CA certificates") && warning.contains("Envoy refuses every client"))
  }

  @Test func aListPastItsNextUpdateIsWarnedAboutAlsoInDER() throws {
    let list = try self.list(by: self.ca.certificate, key: self.ca.privateKey, nextUpdate: Self.now)
    let warning = FileSecretContent.crlWarning(
      caPEM: try self.ca.certificate.pemString(), crl: Data(list.derBytes), now: Self.now)
    #expect(warning?.contains("expired at") == true, "\(warning ?? "no warning")")
  }

  @Test func aCAWhoseKeyUsageLacksCRLSignIsWarnedAbout() throws {
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    let name = try DistinguishedName { CommonName("no crl signing") }
    let ca = try Certificate(
      version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
      notValidBefore: Self.now.addingTimeInterval(-60), notValidAfter: Self.now.addingTimeInterval(3600),
      issuer: name, subject: name,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true))
      },
      issuerPrivateKey: key)
    let warning = try self.warning(try self.list(by: ca, key: key), ca: ca)
    #expect(warning?.contains("lacks cRLSign") == true, "\(warning ?? "no warning")")
  }

  @Test func aListTheAgentCannotReadIsLeftToEnvoy() throws {
    #expect(
      FileSecretContent.crlWarning(
        caPEM: try self.ca.certificate.pemString(), crl: Data("not a list".utf8), now: Self.now) == nil)
  }
}
