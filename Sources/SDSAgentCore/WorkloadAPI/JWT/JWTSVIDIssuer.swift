import Foundation
import Synchronization

/// The JWT profile of the agent's trust domain: signs a caller's JWT-SVIDs, each kept per
/// identity and audience set and signed again at half its life, publishes the key as the
/// domain's JWT bundle, and validates tokens against it.
package final class JWTSVIDIssuer: Sendable {
  private struct Key: Hashable {
    let identity: SPIFFEID
    let audience: [String]
  }

  package let signer: JWTSVIDSigner
  package let ttl: Duration
  package let trustDomain: TrustDomainName
  private let issued = Mutex<[Key: JWTSVID]>([:])

  /// Tokens kept (identities × audience sets); past it, the cache starts over.
  static let maximumKept = 4096

  package init(signer: JWTSVIDSigner, trustDomain: TrustDomainName, ttl: Duration) {
    self.signer = signer
    self.trustDomain = trustDomain
    self.ttl = ttl
  }

  /// The own trust domain's JWT bundle.
  package var bundle: JWTBundle {
    JWTBundle(trustDomain: self.trustDomain, keys: [self.signer.key.publicKey])
  }

  package var validator: JWTSVIDValidator { JWTSVIDValidator(bundles: [self.bundle]) }

  /// A JWT-SVID of `identity` for `audience`: the one kept, until half its life has passed.
  package func svid(for identity: SPIFFEID, audience: [String], now: Date) throws(JWTSVIDFailure) -> JWTSVID {
    let key = Key(identity: identity, audience: Array(Set(audience)).sorted())
    if let kept = self.issued.withLock({ $0[key] }),
      now < kept.issuedAt.addingTimeInterval(kept.expiresAt.timeIntervalSince(kept.issuedAt) / 2),
      now >= kept.issuedAt
    {
      return kept
    }
    let svid = try self.signer.sign(identity, audience: key.audience, issuedAt: now, ttl: self.ttl)
    self.issued.withLock { issued in
      if issued.count >= Self.maximumKept { issued.removeAll(keepingCapacity: true) }
      issued[key] = svid
    }
    return svid
  }
}
