import Foundation
import Synchronization
import X509

/// The agent's own CA when it signs (local mode, `ca serve`): the signing material, and during
/// a root rotation the root that will sign next or the root that signed before. Every root it
/// holds is in its trust bundle. With an `IssuanceRecord`, every leaf it signs (for its own
/// identities and for `ca serve`'s callers) is recorded before it is handed out, so it can be revoked.
package final class EmbeddedCA: CertificateAuthority {
  /// The CA's roots at one moment.
  package struct Roots: Sendable {
    package var signing: CAMaterial
    /// A prepared root that signs after the switch.
    package var next: CAMaterial?
    /// The root that signed before the switch, trusted until its leaves have expired.
    package var previous: Certificate?
    /// The previous root's key, kept until it retires so that it signs its revocation list.
    package var previousKey: Certificate.PrivateKey?

    package init(
      signing: CAMaterial, next: CAMaterial? = nil, previous: Certificate? = nil,
      previousKey: Certificate.PrivateKey? = nil
    ) {
      self.signing = signing
      self.next = next
      self.previous = previous
      self.previousKey = previousKey
    }

    /// Every root trusted now.
    package var trustBundle: TrustBundle {
      TrustBundle(
        roots: [self.previous].compactMap { $0 } + self.signing.trustBundle.roots
          + (self.next?.trustBundle.roots ?? []))
    }
  }

  private let state: Mutex<Roots>
  package let backdate: Duration
  package let record: (any IssuanceRecord)?
  /// Written into every leaf it signs, so that fetch-mode agents find its CRL.
  package let crlDistributionPoint: CRLDistributionPoint?
  /// Signalled at every `install`, for the one service that follows the roots (the revocation
  /// service, which signs a list for each).
  package let rootsInstalled = WakeSignal()

  package init(
    _ roots: Roots, backdate: Duration = .seconds(10), record: (any IssuanceRecord)? = nil,
    crlDistributionPoint: CRLDistributionPoint? = nil
  ) {
    self.state = Mutex(roots)
    self.backdate = backdate
    self.record = record
    self.crlDistributionPoint = crlDistributionPoint
  }

  package var roots: Roots { self.state.withLock { $0 } }
  package var trustBundle: TrustBundle { self.roots.trustBundle }

  /// Installs new roots (a phase of a rotation) and returns the trust bundle they make.
  @discardableResult
  package func install(_ roots: Roots) -> TrustBundle {
    self.state.withLock { $0 = roots }
    self.rootsInstalled.signal()
    return roots.trustBundle
  }

  package func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    let (chain, trustBundle) = try await self.sign(
      publicKey: privateKey.publicKey, identity: identity, ttl: ttl, now: now)
    let certifiedKey = try CertifiedKey(identity: identity, chain: chain, privateKey: privateKey, issuedAt: now)
    return IssuedSVID(certifiedKey: certifiedKey, trustBundle: trustBundle)
  }

  /// Signs a leaf for `publicKey` as `identity` with the root that signs now; returns it with
  /// its intermediates, and the trust bundle of that same moment (every root, during a rotation).
  package func sign(
    publicKey: Certificate.PublicKey,
    identity: SPIFFEID,
    ttl: Duration,
    now: Date
  ) async throws(CertificateAuthorityError) -> (chain: [Certificate], trustBundle: TrustBundle) {
    let roots = self.roots
    let signer = LocalCA(
      material: roots.signing, backdate: self.backdate, crlDistributionPoint: self.crlDistributionPoint)
    let chain = try signer.sign(publicKey: publicKey, identity: identity, ttl: ttl, now: now)
    try await self.record?.record(
      IssuedCertificate(
        serial: CertificateSerial(chain[0].serialNumber), identity: identity, notAfter: chain[0].notValidAfter))
    return (chain, roots.trustBundle)
  }
}
