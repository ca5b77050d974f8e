import Foundation
import SDSAgentCore
import Testing
import X509

/// The CRL distribution point `ca serve --crl-url` writes into each leaf (RFC 5280 §4.2.1.13), as
/// openssl prints it and as the agent reads it back from its own certificate.
@Suite struct CRLDistributionPointTests {
  let url = "http://ca.example.internal:8081/crl/ca.crl"

  func leaf(distributionPoint: CRLDistributionPoint?) throws -> Certificate {
    try LocalCA(material: Fixtures.material, crlDistributionPoint: distributionPoint).sign(
      publicKey: try WorkloadKeyType.ecdsaP256.generate().publicKey, identity: Fixtures.identity,
      ttl: .seconds(3600), now: Fixtures.now)[0]
  }

  @Test func everyLeafNamesTheURLAndOpenSSLPrintsIt() throws {
    let point = try #require(CRLDistributionPoint(url: self.url))
    let leaf = try self.leaf(distributionPoint: point)
    #expect(CRLDistributionPoint(of: leaf) == point)
    let files = try OpenSSLFiles()
    let path = try files.write("leaf.pem", try leaf.pemString())
    let printed = try OpenSSL.run(["x509", "-in", path, "-noout", "-ext", "crlDistributionPoints"])
    #expect(printed.status == 0, "\(printed.output)")
    #expect(printed.output.contains("X509v3 CRL Distribution Points"))
    #expect(printed.output.contains("URI:\(self.url)"))
  }

  @Test func aLeafWithoutOneNamesNone() throws {
    #expect(CRLDistributionPoint(of: try self.leaf(distributionPoint: nil)) == nil)
  }

  @Test(arguments: [
    "https://ca.example/crl", "ftp://ca.example/crl", "http://", "http:///crl", "http://ca example/crl",
    "http://ca.example/" + String(repeating: "a", count: 2100), "ldap://x",
  ])
  func onlyAPlainHTTPURLWithAHostIsTaken(_ text: String) {
    #expect(CRLDistributionPoint(url: text) == nil)
  }
}
