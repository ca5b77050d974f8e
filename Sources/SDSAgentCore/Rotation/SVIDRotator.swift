import Foundation
import Logging
import ServiceLifecycle

/// Keeps the cache holding a valid SVID: issues it, renews it on the `RotationSchedule`,
/// retries failed renewals with backoff while the current SVID is still valid, and withdraws
/// it when it expires unrenewed.
public struct SVIDRotator<C: Clock>: Service, CustomStringConvertible where C.Duration == Duration {
  public struct Configuration: Sendable {
    public var identity: SPIFFEID
    public var keyType: WorkloadKeyType
    public var ttl: Duration
    public var schedule: RotationSchedule
    public var backoff: Backoff

    public init(
      identity: SPIFFEID,
      keyType: WorkloadKeyType,
      ttl: Duration,
      schedule: RotationSchedule = RotationSchedule(),
      backoff: Backoff = Backoff()
    ) {
      self.identity = identity
      self.keyType = keyType
      self.ttl = ttl
      self.schedule = schedule
      self.backoff = backoff
    }
  }

  private let configuration: Configuration
  private let authority: any CertificateAuthority
  private let cache: SecretCache
  private let counters: AgentCounters
  private let clock: C
  private let now: @Sendable () -> Date
  private let random: @Sendable () -> Double
  private let logger: Logger

  /// - Parameters:
  ///   - now: wall-clock time, which certificates are about; `clock` measures the waits.
  ///   - random: a sample in `0...1` for jitter.
  public init(
    configuration: Configuration,
    authority: any CertificateAuthority,
    cache: SecretCache,
    counters: AgentCounters,
    clock: C,
    now: @escaping @Sendable () -> Date,
    random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
    logger: Logger
  ) {
    self.configuration = configuration
    self.authority = authority
    self.cache = cache
    self.counters = counters
    self.clock = clock
    self.now = now
    self.random = random
    self.logger = logger
  }

  public var description: String { "SVIDRotator(\(self.configuration.identity))" }

  /// Issues a new SVID and serves it.
  @discardableResult
  public func rotate() async throws(CertificateAuthorityError) -> IssuedSVID {
    let identity = self.configuration.identity
    let key: WorkloadPrivateKey
    do {
      key = try self.configuration.keyType.generate()
    } catch {
      throw CertificateAuthorityError(
        .signingFailed, "generating a \(self.configuration.keyType.rawValue) key failed: \(error)")
    }
    let issued: IssuedSVID
    do {
      issued = try await self.authority.certify(
        identity: identity,
        privateKey: key,
        ttl: self.configuration.ttl,
        now: self.now()
      )
    } catch {
      self.counters.increment(.issuanceFailures)
      throw error
    }
    self.cache.update(with: issued)
    self.counters.increment(.certificatesIssued)
    let svid = issued.certifiedKey
    self.logger.info(
      "issued certificate",
      metadata: [
        "identity": "\(identity)", "serial": "\(svid.leaf.serialHex)",
        "not_after": "\(svid.notAfter.formatted(.iso8601))",
      ]
    )
    return issued
  }

  public func run() async throws {
    do {
      try await cancelWhenGracefulShutdown {
        try await self.keepRotating()
      }
    } catch is CancellationError {
      return
    }
  }

  private func keepRotating() async throws {
    var backoff = self.configuration.backoff
    var jitter: (serial: String, sample: Double)?
    while true {
      try Task.checkCancellation()
      guard let svid = self.cache.current.svid else {
        do {
          try await self.rotate()
          backoff.reset()
        } catch {
          let delay = backoff.nextDelay(sample: self.random())
          self.logger.error(
            "could not issue a certificate; retrying",
            metadata: ["error": "\(error)", "retry_in": "\(delay)"]
          )
          try await self.clock.sleep(for: delay)
        }
        continue
      }
      let serial = svid.leaf.serialHex
      if jitter?.serial != serial {
        jitter = (serial, self.random() * 2 - 1)
      }
      let now = self.now()
      let decision = self.configuration.schedule.decision(
        issuedAt: svid.issuedAt,
        notAfter: svid.notAfter,
        now: now,
        jitterSample: jitter?.sample ?? 0
      )
      switch decision {
      case .expired:
        self.cache.withdrawSVID()
        self.counters.increment(.svidsWithdrawn)
        self.logger.error(
          "certificate expired before it could be renewed; no longer serving it",
          metadata: ["identity": "\(svid.identity)", "serial": "\(serial)"]
        )
      case .renew(let date):
        try await self.clock.sleep(for: .seconds(date.timeIntervalSince(now)))
      case .renewNow:
        do {
          try await self.rotate()
          backoff.reset()
        } catch {
          let untilExpiry = Duration.seconds(max(0, svid.notAfter.timeIntervalSince(now)))
          let delay = min(backoff.nextDelay(sample: self.random()), untilExpiry)
          self.logger.error(
            "could not renew the certificate; still serving the current one",
            metadata: [
              "error": "\(error)", "serial": "\(serial)", "retry_in": "\(delay)",
              "expires": "\(svid.notAfter.formatted(.iso8601))",
            ]
          )
          try await self.clock.sleep(for: delay)
        }
      }
    }
  }
}
