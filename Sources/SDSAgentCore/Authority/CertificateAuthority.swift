import Foundation
import X509

/// Something that turns a workload key into an SVID: the embedded `LocalCA`, or a remote CA.
package protocol CertificateAuthority: Sendable {
  /// Certifies `privateKey` as `identity` for at most `ttl`, on the authority of `credential`.
  func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID
}

/// What a CA returns: the SVID and the trust bundle it chains to.
package struct IssuedSVID: Sendable {
  package let certifiedKey: CertifiedKey
  package let trustBundle: TrustBundle

  package init(certifiedKey: CertifiedKey, trustBundle: TrustBundle) {
    self.certifiedKey = certifiedKey
    self.trustBundle = trustBundle
  }
}

/// A failure to obtain a certificate, with what went wrong and what to do.
package struct CertificateAuthorityError: AgentFailure {
  package enum Code: String, Sendable {
    /// The CA material is unusable (expired, not a CA, key mismatch); the operator must fix it.
    case caUnusable = "ca_unusable"
    /// Signing failed; retrying may help.
    case signingFailed = "signing_failed"
    /// What a CA returned cannot be served.
    case invalidResponse = "invalid_response"
    /// The CA could not be reached or was overloaded; retrying with backoff helps.
    case unavailable
    /// The CA refused the request (authentication or authorization): a configuration error.
    case refused
  }

  package let code: Code
  package let message: String
  /// The error underneath, if there is one (a TLS failure, a file error, a parse error).
  package let cause: (any Error)?
  /// How long the CA asked to wait before the next attempt (gRPC's `grpc-retry-pushback-ms`):
  /// the retry comes no earlier, in place of the agent's own backoff.
  package let retryAfter: Duration?

  package init(_ code: Code, _ message: String, cause: (any Error)? = nil, retryAfter: Duration? = nil) {
    self.code = code
    self.message = message
    self.cause = cause
    self.retryAfter = retryAfter
  }

  package var description: String {
    self.cause.map { "\(self.code.rawValue): \(self.message): \($0)" } ?? "\(self.code.rawValue): \(self.message)"
  }
}
