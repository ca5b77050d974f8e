import Foundation
import Logging
import SDSAgentCore
import Synchronization
import X509

/// Fetch mode's CA: the Istio-compatible CA, whose responses' roots, with the `ca-root` file's
/// roots and roots the CA stopped sending (until their leaves expire), make the own trust
/// domain's bundle (`ROOTCA`), installed for every identity whenever it changes.
public final class FollowingCA: CertificateAuthority {
  public let client: IstioCAClient
  private let table: IdentityTable
  private let trust: Mutex<FetchedTrust>
  /// How long a root the CA stopped sending stays trusted: the longest certificate lifetime.
  private let retention: @Sendable () -> Duration
  private let logger: Logger

  public init(
    client: IstioCAClient, table: IdentityTable, fileRoots: [Certificate],
    retention: @escaping @Sendable () -> Duration, logger: Logger
  ) throws {
    self.client = client
    self.table = table
    self.trust = Mutex(FetchedTrust(fileRoots: fileRoots))
    self.retention = retention
    self.logger = logger
    if !fileRoots.isEmpty {
      try table.installTrustBundle(TrustBundle(roots: fileRoots))
    }
  }

  public var current: FetchedTrust { self.trust.withLock { $0 } }

  public func certify(
    identity: SPIFFEID, privateKey: WorkloadPrivateKey, ttl: Duration, now: Date, credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    let issued = try await self.client.certify(
      identity: identity, privateKey: privateKey, ttl: ttl, now: now, credential: credential)
    let bundle = try self.update {
      $0.observe(response: issued.trustBundle.roots, now: now, retention: self.retention())
    }
    return IssuedSVID(certifiedKey: issued.certifiedKey, trustBundle: bundle)
  }

  /// Takes the `ca-root` file's roots.
  public func setFileRoots(_ roots: [Certificate]) throws(CertificateAuthorityError) {
    try self.update { $0.setFileRoots(roots) }
  }

  /// Drops retained roots whose leaves have expired.
  public func prune(now: Date) throws(CertificateAuthorityError) {
    try self.update { $0.prune(now: now) }
  }

  /// Changes the trust and, if the bundle changed, installs it for every identity.
  @discardableResult
  private func update(_ change: (inout FetchedTrust) -> Void) throws(CertificateAuthorityError) -> TrustBundle {
    let (before, after, retained) = self.trust.withLock { trust in
      let before = trust.bundle
      change(&trust)
      return (before, trust.bundle, trust.retained)
    }
    if after != before {
      try self.table.installTrustBundle(after)
      self.logger.notice(
        "the CA's trust bundle changed",
        metadata: [
          "roots": "\(after.roots.map(\.serialHex))",
          "retained_until": "\(retained.map { "\($0.key.serialHex)=\($0.value.formatted(.iso8601))" })",
        ])
    }
    return after
  }
}
