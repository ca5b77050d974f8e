import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// `ca serve --crl-url --crl-listen` over real sockets: a certificate it signs over gRPC names the
/// distribution point, and after `POST /ca/revoke` on its admin endpoint the agent's fetcher reads
/// a newer CRL listing the serial from its HTTP listener.
@Suite(.timeLimit(.minutes(1))) struct CAServerCRLDistributionTests {
  /// Its fixtures: a token issuer, the server's configuration, running it, a certificate from it.
  let rotation = CAServerRotationTests()

  @Test func aRevocationOnCAServeReachesTheDistributionPoint() async throws {
    let (directory, issuer) = try await self.rotation.fixture()
    var configuration = self.rotation.configuration(directory, issuer: issuer, maximumTTL: .seconds(3600))
    let url = "http://ca.test:8081/fleet/ca.crl"
    let distributionPoint = try #require(CRLDistributionPoint(url: url))
    configuration.crlURL = distributionPoint
    configuration.crlListen = ("127.0.0.1", 0)
    try await self.rotation.withCAServer(configuration) { server, port in
      let issued = try await self.rotation.certify(
        port: port, roots: directory + "/ca/ca-cert.pem", directory)
      let leaf = issued.certifiedKey.leaf
      #expect(CRLDistributionPoint(of: leaf)?.url == url)
      var bound = try #require(server.crlServer).boundAddresses.makeAsyncIterator()
      let crlPort = try #require(await bound.next()?.port)
      let point = try #require(CRLDistributionPoint(url: "http://127.0.0.1:\(crlPort)/fleet/ca.crl"))
      let fetcher = HTTPCRLFetcher(clock: ContinuousClock())
      let before = try CertificateRevocationList.read(try await fetcher.fetch(point))
      let serial = CertificateSerial(leaf.serialNumber)
      #expect(before.count == 1 && before[0].isSigned(by: server.material.certificate))
      #expect(before.first?.revokes(serial) == false)
      let started = ContinuousClock.now
      let revoked = try await AdminClient.request(
        "POST", "/ca/revoke", at: .unixSocket(path: directory + "/admin.sock"),
        body: Array(#"{"serial": "\#(serial)"}"#.utf8))
      #expect(revoked.status == 200, "\(revoked.body)")
      let after = try CertificateRevocationList.read(try await fetcher.fetch(point))
      print("ca serve: revoked and fetched the new CRL in \(ContinuousClock.now - started)")
      #expect(after.first?.revokes(serial) == true)
      #expect((after.first?.number ?? 0) > before[0].number)
    }
  }
}
