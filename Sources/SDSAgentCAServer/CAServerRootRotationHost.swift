import Foundation
import SDSAgent
import SDSAgentCore
import X509

/// `ca serve`'s side of a root rotation. Every answer reads the CA's bundle, so there is nothing
/// to push; its clients' acknowledgements cannot be seen, so the switch comes at `switchAt` and
/// the overlap is at least `--max-ttl` (`MinimumOverlap.renewal`); at the switch its TLS serving
/// certificate is minted anew from the new root; the old root is retired once every leaf it
/// signed, at most `--max-ttl` long, has expired.
struct CAServerRootRotationHost: RootRotationHost {
  let ca: EmbeddedCA
  let servingCertificate: ServingCertificate
  let maximumTTL: Duration

  /// Each answer carries the CA's bundle of its moment (`IstioCertificateSigner`).
  func serveTrustBundle(_ bundle: TrustBundle) throws(CertificateAuthorityError) {}

  func streamsNotAcknowledging(_ root: Certificate) -> [StreamRegistry.Stream] { [] }

  var trustBundleAcknowledged: WakeSignal? { nil }

  func lastLeafExpiry(now: Date) -> Date {
    now.addingTimeInterval(self.maximumTTL.seconds)
  }

  func reissueAll() async -> [(subject: String, error: any Error)] {
    do {
      try self.servingCertificate.renew(signedBy: self.ca.roots.signing)
      return []
    } catch {
      // Minting in memory fails only on a broken key; a restart mints from the signing root.
      let failure = CertificateAuthorityError(
        .signingFailed,
        "new connections are still served the old root's certificate, which clients stop trusting when the old "
          + "root retires; restart ca serve to mint one from the new root", cause: error)
      return [(subject: "the TLS serving certificate", error: failure)]
    }
  }

  var minimumOverlap: MinimumOverlap? { .renewal(maximumTTL: self.maximumTTL) }
}
