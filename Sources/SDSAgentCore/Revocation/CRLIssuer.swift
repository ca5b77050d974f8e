import X509

/// A CA certificate whose key is held, so it can sign its own revocation list.
public struct CRLIssuer: Sendable {
  public let certificate: Certificate
  public let key: Certificate.PrivateKey

  public init(certificate: Certificate, key: Certificate.PrivateKey) {
    self.certificate = certificate
    self.key = key
  }
}
