import Foundation
import Synchronization

/// The JWT profile of the agent's trust domain: signs a caller's JWT-SVIDs with the key that
/// signs now, each kept per identity and audience set and signed again at half its life (or at
/// once, when another key signs since), publishes the keys as the domain's JWT bundle, and
/// validates tokens against it.
package final class JWTSVIDIssuer: Sendable {
  private struct Key: Hashable {
    let identity: SPIFFEID
    let audience: [String]
  }

  /// The signing keys, which rotate with the root.
  package let keys: JWTKeyRing
  package var ttl: Duration { self.keys.ttl }
  package var trustDomain: TrustDomainName { self.keys.trustDomain }
  private let issued = Mutex<[Key: JWTSVID]>([:])

  /// Tokens kept (identities × audience sets); past it, the cache starts over.
  static let maximumKept = 4096

  package init(keys: JWTKeyRing) {
    self.keys = keys
  }

  /// An issuer whose one key never rotates.
  package convenience init(signer: JWTSVIDSigner, trustDomain: TrustDomainName, ttl: Duration) {
    self.init(keys: JWTKeyRing(JWTSigningKeys(signing: signer.key), trustDomain: trustDomain, ttl: ttl))
  }

  /// Signs with the key that signs now.
  package var signer: JWTSVIDSigner { JWTSVIDSigner(key: self.keys.current.signing) }

  /// The own trust domain's JWT bundle: the signing key, a prepared one, retiring ones.
  package var bundle: JWTBundle { self.keys.bundle }

  /// A JWT-SVID of `identity` for `audience`: the one kept, until half its life has passed or
  /// another key signs.
  package func svid(for identity: SPIFFEID, audience: [String], now: Date) throws(JWTSVIDFailure) -> JWTSVID {
    let key = Key(identity: identity, audience: Array(Set(audience)).sorted())
    return try self.keys.withSigningKey { (signing: JWTSigningKey) throws(JWTSVIDFailure) -> JWTSVID in
      if let kept = self.issued.withLock({ $0[key] }), kept.kid == signing.kid,
        now < kept.issuedAt.addingTimeInterval(kept.expiresAt.timeIntervalSince(kept.issuedAt) / 2),
        now >= kept.issuedAt
      {
        return kept
      }
      let svid = try JWTSVIDSigner(key: signing).sign(identity, audience: key.audience, issuedAt: now, ttl: self.ttl)
      self.issued.withLock { issued in
        if issued.count >= Self.maximumKept { issued.removeAll(keepingCapacity: true) }
        issued[key] = svid
      }
      return svid
    }
  }
}
