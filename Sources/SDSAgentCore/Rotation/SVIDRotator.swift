import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What a rotator issues and when.
public struct SVIDRotatorConfiguration: Sendable, Equatable {
  public var identity: SPIFFEID
  public var keyType: WorkloadKeyType
  public var ttl: Duration
  public var schedule: RotationSchedule
  public var backoff: Backoff
  /// The authority certificate requests carry; a newer forwarded token replaces it.
  public var credential: CACredential

  public init(
    identity: SPIFFEID,
    keyType: WorkloadKeyType,
    ttl: Duration,
    schedule: RotationSchedule = RotationSchedule(),
    backoff: Backoff = Backoff(),
    credential: CACredential = .agent
  ) {
    self.identity = identity
    self.credential = credential
    self.keyType = keyType
    self.ttl = ttl
    self.schedule = schedule
    self.backoff = backoff
  }
}
/// Keeps the cache holding a valid SVID: issues it, renews it on the `RotationSchedule`,
/// retries failed renewals with backoff while the current SVID is still valid, and withdraws
/// it when it expires unrenewed.
public struct SVIDRotator<C: Clock>: Service, CustomStringConvertible where C.Duration == Duration {
  public typealias Configuration = SVIDRotatorConfiguration

  private let state: RotatorState
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
    self.state = RotatorState(configuration)
    self.authority = authority
    self.cache = cache
    self.counters = counters
    self.clock = clock
    self.now = now
    self.random = random
    self.logger = logger
  }

  public var description: String { "SVIDRotator(\(self.configuration.identity))" }

  /// The settings in force; reload replaces them.
  public var configuration: Configuration { self.state.configuration }

  /// When the current SVID will be renewed, once the rotator has scheduled it.
  public var nextRotation: Date? { self.state.nextRotation }

  /// Applies new settings. A new lifetime or key type takes effect with a rotation now; a new
  /// schedule from the next renewal on.
  public func update(_ configuration: Configuration) async throws(CertificateAuthorityError) {
    let previous = self.state.replace(configuration)
    if previous.ttl != configuration.ttl || previous.keyType != configuration.keyType {
      try await self.rotate()
    }
  }

  /// Issues a new SVID and serves it. With `credential`, the request carries it, and on success
  /// it is the credential of every renewal from now on.
  @discardableResult
  public func rotate(credential: CACredential? = nil) async throws(CertificateAuthorityError) -> IssuedSVID {
    let identity = self.configuration.identity
    let key: WorkloadPrivateKey
    do {
      key = try self.configuration.keyType.generate()
    } catch {
      throw CertificateAuthorityError(
        .signingFailed, "generating a \(self.configuration.keyType.rawValue) key failed: \(error)")
    }
    let issued: IssuedSVID
    let started = ContinuousClock.now
    do {
      issued = try await self.authority.certify(
        identity: identity,
        privateKey: key,
        ttl: self.configuration.ttl,
        now: self.now(),
        credential: credential ?? self.configuration.credential
      )
    } catch {
      self.counters.recordIssuance(duration: ContinuousClock.now - started, succeeded: false)
      self.counters.increment(.issuanceFailures, labels: [("code", error.code.rawValue)])
      throw error
    }
    self.counters.recordIssuance(duration: ContinuousClock.now - started, succeeded: true)
    try self.cache.update(with: issued)
    if let credential {
      self.state.replaceCredential(credential)
    }
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
      self.state.nextRotation = self.configuration.schedule.renewalTime(
        issuedAt: svid.issuedAt,
        notAfter: svid.notAfter,
        jitterSample: jitter?.sample ?? 0
      )
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

/// The rotator's settings and schedule, shared by its copies and changed by reload.
final class RotatorState: Sendable {
  private struct Values {
    var configuration: SVIDRotatorConfiguration
    var nextRotation: Date?
  }

  private let values: Mutex<Values>

  init(_ configuration: SVIDRotatorConfiguration) {
    self.values = Mutex(Values(configuration: configuration))
  }

  var configuration: SVIDRotatorConfiguration { self.values.withLock { $0.configuration } }

  var nextRotation: Date? {
    get { self.values.withLock { $0.nextRotation } }
    set { self.values.withLock { $0.nextRotation = newValue } }
  }

  func replaceCredential(_ credential: CACredential) {
    self.values.withLock { $0.configuration.credential = credential }
  }

  /// Installs `configuration` and returns the one it replaced.
  func replace(_ configuration: SVIDRotatorConfiguration) -> SVIDRotatorConfiguration {
    self.values.withLock { values in
      let previous = values.configuration
      values.configuration = configuration
      return previous
    }
  }
}
