import X509

/// A CA certificate whose key is held, so it can sign its own revocation list.
package struct CRLIssuer: Sendable {
  package let certificate: Certificate
  package let key: Certificate.PrivateKey

  package init(certificate: Certificate, key: Certificate.PrivateKey) {
    self.certificate = certificate
    self.key = key
  }
}
