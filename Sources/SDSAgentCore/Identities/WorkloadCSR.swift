import X509

/// The certificate signing request the agent sends for a workload: an empty subject and one
/// critical URI SAN, the SPIFFE ID, signed by the workload's fresh key.
package enum WorkloadCSR {
  package static func make(identity: SPIFFEID, privateKey: WorkloadPrivateKey) throws -> CertificateSigningRequest {
    let extensions = try Certificate.Extensions {
      Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)]))
    }
    return try CertificateSigningRequest(
      version: .v1,
      subject: DistinguishedName(),
      privateKey: privateKey.key,
      attributes: CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))])
    )
  }
}
