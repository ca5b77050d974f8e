import SwiftASN1
import X509

/// A verifier policy for SPIFFE X.509 SVIDs: the leaf carries exactly one SPIFFE ID, the expected
/// one if given, in its (critical, because the subject is empty) subject alternative name.
///
/// `RFC5280Policy` alone reports a critical SAN on a leaf with an empty subject as an unhandled
/// critical extension; this policy declares it handled because it checks it.
package struct SPIFFELeafPolicy: VerifierPolicy {
  package let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
    .X509ExtensionID.subjectAlternativeName
  ]
  package let expectedIdentity: SPIFFEID?

  package init(expectedIdentity: SPIFFEID?) {
    self.expectedIdentity = expectedIdentity
  }

  package mutating func chainMeetsPolicyRequirements(
    chain: UnverifiedCertificateChain
  ) async -> PolicyEvaluationResult {
    let leaf = chain.leaf
    let ids = leaf.spiffeIDs
    guard ids.count == 1, let id = ids.first else {
      return .failsToMeetPolicy(reason: "the leaf must carry exactly one SPIFFE ID URI SAN, found \(ids.count)")
    }
    if let expected = self.expectedIdentity, expected != id {
      return .failsToMeetPolicy(reason: "the leaf is \(id), expected \(expected)")
    }
    for certificate in chain.dropFirst() {
      guard case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority
      else {
        return .failsToMeetPolicy(reason: "\(certificate.subject) in the chain is not a CA")
      }
    }
    return .meetsPolicy
  }
}
