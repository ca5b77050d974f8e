import Foundation
import Logging

extension IdentityTable {
  /// The trust bundle installed for every identity, if the trust lifecycle decides it.
  public var installedTrustBundle: TrustBundle? { self.trust.withLock { $0 } }

  /// Serves `bundle` to every identity from now on, also to identities issued later, and pushes
  /// it to every open stream whose bundle it changes.
  public func installTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installed: inout TrustBundle?) throws(CertificateAuthorityError) in
      installed = bundle
      for identity in self.identities {
        try self.cache(for: identity)?.updateTrustBundle(bundle)
      }
    }
  }

  /// Serves a new issuance in `cache`, with the installed trust bundle if there is one.
  func serve(_ issued: IssuedSVID, in cache: SecretCache) throws(CertificateAuthorityError) {
    try self.trust.withLock { (installed: inout TrustBundle?) throws(CertificateAuthorityError) in
      try cache.update(with: issued.certifiedKey, trustBundle: installed ?? issued.trustBundle)
    }
  }

  /// Issues a new certificate for every identity at once and waits for all of them; returns the
  /// identities whose issuance failed, with the error.
  public func reissueAll() async -> [(SPIFFEID, CertificateAuthorityError)] {
    await withTaskGroup(of: (SPIFFEID, CertificateAuthorityError)?.self) { group in
      for identity in self.identities {
        group.addTask {
          if case .failure(let error) = await self.issue(identity, retries: true, joinInFlight: false) {
            return (identity, error)
          }
          return nil
        }
      }
      var failures: [(SPIFFEID, CertificateAuthorityError)] = []
      for await failure in group {
        if let failure { failures.append(failure) }
      }
      return failures
    }
  }
}
