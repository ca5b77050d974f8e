import EnvoySDSProtos
import Foundation
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

extension Istio_V1_Auth_IstioCertificateResponse {
  /// Turns a CA's answer into an SVID, or says why it cannot be served.
  ///
  /// Accepts both styles: `cert_chain` = [leaf, intermediates…, root bundle last] (istiod and
  /// istio-csr today), and `cert_chain` = [leaf, intermediates…] with the roots in
  /// `root_cert.ca_cert`. The leaf must hold our key and our SPIFFE ID, chain to one of the
  /// returned roots, and be valid now.
  package func validatedSVID(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    now: Date
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    let elements: [[Certificate]]
    let explicitRoots: [Certificate]
    do {
      elements = try self.certChain.map(Self.certificates(in:))
      explicitRoots = try self.rootCert.caCert.flatMap(Self.certificates(in:))
    } catch {
      throw CertificateAuthorityError(
        .invalidResponse, "the CA returned a certificate that does not parse", cause: error)
    }
    guard let leaf = elements.first?.first else {
      throw CertificateAuthorityError(.invalidResponse, "the CA returned an empty certificate chain")
    }
    var chain: [Certificate]
    let roots: [Certificate]
    if !explicitRoots.isEmpty {
      roots = explicitRoots
      chain = elements.flatMap { $0 }.filter { !roots.contains($0) }
    } else {
      guard elements.count >= 2, let bundle = elements.last else {
        throw CertificateAuthorityError(
          .invalidResponse,
          "the CA returned no root: cert_chain has only the leaf and root_cert is empty"
        )
      }
      roots = bundle
      chain = elements.dropLast().flatMap { $0 }
    }
    if chain.first != leaf { chain.insert(leaf, at: 0) }

    let certifiedKey = try CertifiedKey(identity: identity, chain: chain, privateKey: privateKey, issuedAt: now)
    var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
      RFC5280Policy(fixedExpiryValidationTime: now)
      SPIFFELeafPolicy(expectedIdentity: identity)
    }
    let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst())))
    guard case .validCertificate = result else {
      let reason: String
      if case .couldNotValidate(let failures) = result, !failures.isEmpty {
        reason = failures.map { "\($0.policyFailureReason)" }.joined(separator: "; ")
      } else if case .couldNotValidate = result {
        reason = "no chain from the leaf reaches any of the returned roots"
      } else {
        reason = "\(result)"
      }
      throw CertificateAuthorityError(
        .invalidResponse,
        "the certificate does not verify against the returned roots at \(now.formatted(.iso8601)): \(reason)"
      )
    }
    return IssuedSVID(certifiedKey: certifiedKey, trustBundle: TrustBundle(roots: roots))
  }

  static func certificates(in pem: String) throws -> [Certificate] {
    try PEMDocument.parseMultiple(pemString: pem).map(Certificate.init(pemDocument:))
  }
}
