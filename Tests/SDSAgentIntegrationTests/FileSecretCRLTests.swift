import EnvoySDSProtos
import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import SwiftProtobuf
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A file validation context that names its own CRL file (`name=clients,ca=FILE,crl=FILE`), on a
/// live agent's socket: the list is served in the context's `crl` as the file holds it, and a
/// new list written over the file alone is pushed on the open stream.
@Suite(.timeLimit(.minutes(1))) struct FileSecretCRLTests {
  let directory = TemporaryDirectory.make()
  let ca: CAMaterial

  init() throws {
    self.ca = try CAMaterial.generateRoot(trustDomain: "example.org", now: Date(), commonName: "clients")
  }

  func path(_ name: String) -> String { self.directory + "/" + name }

  /// Writes `text` over `name` by a rename, as configuration tools do.
  func install(_ text: String, as name: String) throws {
    try text.write(toFile: self.path(name + ".tmp"), atomically: false, encoding: .utf8)
    #expect(rename(self.path(name + ".tmp"), self.path(name)) == 0)
  }

  /// A list of the test CA revoking `serials`.
  func list(number: Int, revoking serials: [String]) throws -> CertificateRevocationList {
    let now = Date()
    return try CertificateRevocationList(
      issuer: self.ca.certificate, issuerKey: self.ca.privateKey, number: number,
      entries: serials.map {
        RevokedCertificate(
          serial: CertificateSerial(hex: $0)!, revokedAt: now, reason: .keyCompromise,
          notAfter: now.addingTimeInterval(3600))
      },
      thisUpdate: now, nextUpdate: now.addingTimeInterval(3600))
  }

  /// The list a response's validation context carries.
  func served(in response: SDSStream.Response) throws -> CertificateRevocationList {
    let resource = try #require(response.resources.first)
    let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: resource)
    guard case .validationContext(let context) = secret.type else {
      throw AgentError(.connection, "clients is not a validation context")
    }
    return try CertificateRevocationList(pemEncoded: String(decoding: context.crl.inlineBytes, as: UTF8.self))
  }

  @Test func theCRLFileIsServedInItsContextAndItsChangeIsPushed() async throws {
    try self.install(try self.ca.certificate.serializeAsPEM().pemString, as: "ca.pem")
    let first = try self.list(number: 1, revoking: ["0a"])
    try self.install(first.pemString, as: "clients.crl")
    var builder = AgentConfigurationBuilder(directory: TemporaryDirectory.make())
    builder.fileSecrets = [
      FileSecretSource(
        name: "clients", files: .validationContext(ca: self.path("ca.pem"), crl: self.path("clients.crl")))
    ]
    try await RunningAgent.with(try builder.build()) { running in
      try await running.withClient(over: .unixSocket) { client in
        try await client.withStream { stream in
          stream.request(["clients"])
          let response = try #require(try await stream.next())
          #expect(try self.served(in: response).derBytes == first.derBytes)
          stream.request(["clients"], acknowledging: response)

          let second = try self.list(number: 2, revoking: ["0a", "0b"])
          try self.install(second.pemString, as: "clients.crl")
          let pushed = try #require(try await stream.next())
          let served = try self.served(in: pushed)
          #expect(served.number == 2 && served.revokes(CertificateSerial(hex: "0b")!))
          #expect(served.isSigned(by: self.ca.certificate))
          #expect(pushed.versionInfo != response.versionInfo)
        }
      }
    }
  }
}
