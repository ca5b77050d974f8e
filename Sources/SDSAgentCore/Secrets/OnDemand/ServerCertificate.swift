import EnvoySDSProtos
import Foundation
import X509

/// A TLS server certificate minted on demand for one DNS name, with its key, encoded once as the
/// `tls_certificate` Envoy gets.
package struct ServerCertificate: Sendable {
  package let name: DNSName
  /// Leaf first, then the intermediates.
  package let chain: [Certificate]
  package let issuedAt: Date
  let message: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate

  package var leaf: Certificate { self.chain[0] }
  package var serial: String { self.leaf.serialHex }
  package var notAfter: Date { self.leaf.notValidAfter }

  package init(name: DNSName, chain: [Certificate], privateKey: WorkloadPrivateKey, issuedAt: Date) throws {
    guard let leaf = chain.first, leaf.publicKey == privateKey.publicKey else {
      throw CertificateAuthorityError(.invalidResponse, "the certificate for \(name) does not match its key")
    }
    self.name = name
    self.chain = chain
    self.issuedAt = issuedAt
    var message = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
    message.certificateChain.inlineBytes = Data(try chain.map { try $0.pemString() + "\n" }.joined().utf8)
    message.privateKey.inlineBytes = Data(privateKey.pkcs8PEM.utf8)
    self.message = message
  }
}
