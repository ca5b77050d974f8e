import Foundation
import Logging
import SDSAgentCore
import Synchronization
import X509

/// Fetch mode's CA: the Istio-compatible CA, whose responses' roots, with the `ca-root` file's
/// roots and roots the CA stopped sending (until their leaves expire), make the own trust
/// domain's bundle (`ROOTCA`), installed for every identity whenever it changes. Its deadlines
/// are changes of the table's trust schedule, made on the identity supervisor's timer: a
/// retained root leaves when its time is over (`.fetchedRetention`), a file root when it expires
/// (`.caRootExpiry`).
package final class FollowingCA: CertificateAuthority, CustomStringConvertible {
  private let upstream: any CertificateAuthority
  private let table: IdentityTable
  private let trust: Mutex<FetchedTrust>
  /// How long a root the CA stopped sending stays trusted: the longest certificate lifetime.
  private let retention: @Sendable () -> Duration
  private let counters: AgentCounters
  private let logger: Logger

  /// - Parameters:
  ///   - upstream: the CA asked (an `IstioCAClient`).
  ///   - counters: where a `ca-root` file whose roots all expired is counted.
  package init(
    upstream: any CertificateAuthority, table: IdentityTable, fileRoots: [Certificate],
    retention: @escaping @Sendable () -> Duration, counters: AgentCounters = AgentCounters(), logger: Logger
  ) throws {
    self.upstream = upstream
    self.table = table
    self.trust = Mutex(FetchedTrust(fileRoots: fileRoots))
    self.retention = retention
    self.counters = counters
    self.logger = logger
    if !fileRoots.isEmpty {
      try table.installTrustBundle(TrustBundle(roots: fileRoots))
    }
    self.trust.withLock { self.scheduleDeadlines(of: $0) }
  }

  package var current: FetchedTrust { self.trust.withLock { $0 } }

  package var description: String { "FollowingCA" }

  package func certify(
    identity: SPIFFEID, privateKey: WorkloadPrivateKey, ttl: Duration, now: Date, credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    let issued = try await self.upstream.certify(
      identity: identity, privateKey: privateKey, ttl: ttl, now: now, credential: credential)
    let bundle = try self.update {
      $0.observe(response: issued.trustBundle.roots, now: now, retention: self.retention())
    }
    return IssuedSVID(certifiedKey: issued.certifiedKey, trustBundle: bundle)
  }

  /// Takes the `ca-root` file's roots.
  package func setFileRoots(_ roots: [Certificate]) throws(CertificateAuthorityError) {
    try self.update { $0.setFileRoots(roots) }
  }

  /// Drops retained roots whose leaves have expired.
  package func prune(now: Date) throws(CertificateAuthorityError) {
    try self.update { $0.prune(now: now) }
  }

  /// Drops the `ca-root` file's roots that have expired; when none is left, that is counted and
  /// logged as a file whose roots all expired (the CA's roots are still served).
  package func expireFileRoots(now: Date) throws(CertificateAuthorityError) {
    let before = self.current.fileRoots
    var expired: [Certificate] = []
    try self.update { expired = $0.dropExpiredFileRoots(now: now) }
    guard !expired.isEmpty else { return }
    let left = before.count - expired.count
    if left == 0 {
      let error = BundleDocument.allExpired(before, now: now)
      let domain = self.table.ownTrustDomain.name
      self.counters.increment(
        .trustBundleErrors, labels: [("trust_domain", domain), ("reason", error.reason.rawValue)])
      self.logger.warning(
        "the CA roots file's roots all expired; serving the CA's roots only",
        metadata: ["reason": "\(error.reason.rawValue)", "error": "\(error.message)"])
    } else {
      self.logger.notice(
        "a root of the CA roots file expired; it left the trust bundle",
        metadata: ["expired": "\(expired.count)", "roots": "\(left)"])
    }
  }

  /// Changes the trust and, if the bundle changed, installs it for every identity.
  @discardableResult
  private func update(_ change: (inout FetchedTrust) -> Void) throws(CertificateAuthorityError) -> TrustBundle {
    let (before, after, retained) = self.trust.withLock { trust in
      let before = trust.bundle
      change(&trust)
      self.scheduleDeadlines(of: trust)
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

  /// Schedules the retained roots' and the file roots' next deadlines, in place of those before.
  /// Under the trust's lock, so a deadline of an older state never replaces a newer one's.
  private func scheduleDeadlines(of trust: FetchedTrust) {
    let schedule = self.table.trustSchedule
    if let at = trust.nextExpiry {
      schedule.schedule(.fetchedRetention, at: at) { [weak self] now throws(CertificateAuthorityError) in
        try self?.prune(now: now)
        return nil
      }
    } else {
      schedule.cancel(.fetchedRetention)
    }
    if let at = trust.nextFileRootExpiry {
      schedule.schedule(.caRootExpiry, at: at) { [weak self] now throws(CertificateAuthorityError) in
        try self?.expireFileRoots(now: now)
        return nil
      }
    } else {
      schedule.cancel(.caRootExpiry)
    }
  }
}
