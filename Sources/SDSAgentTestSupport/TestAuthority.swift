import Foundation
import SDSAgentCore
import Synchronization
import X509

/// A `CertificateAuthority` wrapper a test can make fail on purpose, to drill CA outages.
package final class TestAuthority: CertificateAuthority {
  private let wrapped: LocalCA
  private let failing = Mutex(false)
  private let calls = Mutex([CACredential]())

  package init(material: CAMaterial) {
    self.wrapped = LocalCA(material: material)
  }

  package var material: CAMaterial { self.wrapped.material }

  package var isFailing: Bool {
    get { self.failing.withLock { $0 } }
    set { self.failing.withLock { $0 = newValue } }
  }

  package var callCount: Int { self.calls.withLock { $0.count } }

  /// The credential of every request so far, in order.
  package var credentials: [CACredential] { self.calls.withLock { $0 } }

  package func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    self.calls.withLock { $0.append(credential) }
    if self.isFailing {
      throw CertificateAuthorityError(.signingFailed, "the test CA is down")
    }
    return try self.wrapped.certify(
      identity: identity, privateKey: privateKey, ttl: ttl, now: now, credential: credential)
  }
}
