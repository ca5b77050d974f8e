import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization
import X509

/// Fetch mode's CA: the Istio-compatible CA, whose responses' roots, with the `ca-root` file's
/// roots and roots the CA stopped sending (until their leaves expire), make the own trust
/// domain's bundle (`ROOTCA`), installed for every identity whenever it changes. Running, it
/// drops each retained root when its time is over, on the injected clock.
package final class FollowingCA: CertificateAuthority, Service, CustomStringConvertible {
  private let upstream: any CertificateAuthority
  private let table: IdentityTable
  private let trust: Mutex<FetchedTrust>
  /// How long a root the CA stopped sending stays trusted: the longest certificate lifetime.
  private let retention: @Sendable () -> Duration
  private let clock: any Clock<Duration>
  private let now: @Sendable () -> Date
  private let logger: Logger
  /// Signalled when the next retained root's time changes.
  private let retainedChanged = WakeSignal()

  /// - Parameters:
  ///   - upstream: the CA asked (an `IstioCAClient`).
  ///   - clock: the clock the retained roots' deadlines are waited on; `now` is the wall clock
  ///     they are stated in.
  package init(
    upstream: any CertificateAuthority, table: IdentityTable, fileRoots: [Certificate],
    retention: @escaping @Sendable () -> Duration, clock: any Clock<Duration> = ContinuousClock(),
    now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
  ) throws {
    self.upstream = upstream
    self.table = table
    self.trust = Mutex(FetchedTrust(fileRoots: fileRoots))
    self.retention = retention
    self.clock = clock
    self.now = now
    self.logger = logger
    if !fileRoots.isEmpty {
      try table.installTrustBundle(TrustBundle(roots: fileRoots))
    }
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

  /// Drops each retained root when its time is over, until the task is cancelled.
  package func run() async {
    await cancelWhenGracefulShutdown {
      await self.pruneOnTime(self.clock)
    }
  }

  private func pruneOnTime<C: Clock<Duration>>(_ clock: C) async {
    let timer = DeadlineTimer(clock: clock, wake: self.retainedChanged) { [self] in
      self.trust.withLock { $0.nextExpiry }.map {
        clock.now.advanced(by: .seconds(max(0, $0.timeIntervalSince(self.now()))))
      }
    }
    for await _ in timer {
      do {
        try self.prune(now: self.now())
      } catch {
        self.logger.error("cannot serve the CA's trust bundle", metadata: ["error": "\(error)"])
      }
    }
  }

  /// Changes the trust and, if the bundle changed, installs it for every identity.
  @discardableResult
  private func update(_ change: (inout FetchedTrust) -> Void) throws(CertificateAuthorityError) -> TrustBundle {
    let (before, after, retained, expiryMoved) = self.trust.withLock { trust in
      let (before, expiry) = (trust.bundle, trust.nextExpiry)
      change(&trust)
      return (before, trust.bundle, trust.retained, trust.nextExpiry != expiry)
    }
    if expiryMoved { self.retainedChanged.signal() }
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
