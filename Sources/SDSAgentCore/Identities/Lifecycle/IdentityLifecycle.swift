import Foundation

/// One identity's certificate lifecycle as a value: its phase, when it next needs attention and
/// what to do then. Transitions take the time as an argument and return the work to do; the
/// `IdentitySupervisor` does the work and reports the outcome back. No I/O, no clock.
package struct IdentityLifecycle: Sendable {
  /// The validity of the certificate being served.
  package struct Validity: Sendable, Equatable {
    package let serial: String
    package let issuedAt: Date
    package let notAfter: Date

    package init(serial: String, issuedAt: Date, notAfter: Date) {
      self.serial = serial
      self.issuedAt = issuedAt
      self.notAfter = notAfter
    }
  }

  /// What the supervisor must do for this identity now.
  package enum Work: Sendable, Equatable {
    /// Issue a certificate on the authority of `credential`; report a failure with `retries`.
    case issue(CACredential, retries: Bool)
    /// Stop serving the certificate: it expired unrenewed.
    case withdraw(serial: String)
    /// Drop the identity: nobody has used it for the idle timeout.
    case evict
  }

  /// An issuance someone asked for, waiting to start.
  struct Request: Sendable, Equatable {
    var credential: CACredential
    /// Whether a failure is retried with backoff (a refused forwarded token is not).
    var retries: Bool
  }

  package let identity: SPIFFEID
  /// Pinned identities (the agent's own) are never evicted and always retried.
  package let isPinned: Bool
  package private(set) var phase: IdentityPhase = .issuing
  package private(set) var certificate: Validity?
  package private(set) var settings: IdentitySettings
  /// The credential renewals carry; a forwarded token the CA accepted replaces it.
  package private(set) var credential: CACredential
  package private(set) var renewAt: Date?
  package private(set) var retryAt: Date?
  package private(set) var streams = 0
  package private(set) var idleSince: Date?
  package private(set) var isIssuing = false
  /// Whether failures are retried on a schedule: once the identity was issued or a retryable
  /// issuance failed, it is kept fresh until evicted.
  package private(set) var isScheduled: Bool
  private(set) var pending: Request?
  private var backoff: Backoff
  private var jitterSample: Double = 0

  package init(identity: SPIFFEID, settings: IdentitySettings, credential: CACredential, isPinned: Bool, now: Date) {
    self.identity = identity
    self.settings = settings
    self.credential = credential
    self.isPinned = isPinned
    self.isScheduled = isPinned
    self.backoff = settings.backoff
    self.idleSince = now
    if isPinned {
      self.pending = Request(credential: credential, retries: true)
    }
  }

  // MARK: - Events

  /// Asks for an issuance as soon as possible; one already asked for is replaced. `retries`:
  /// whether a failure is retried with backoff (a refused forwarded token is not).
  package mutating func request(credential: CACredential? = nil, retries: Bool) {
    self.pending = Request(credential: credential ?? self.credential, retries: retries)
  }

  package mutating func streamOpened() {
    self.streams += 1
    self.idleSince = nil
  }

  package mutating func streamClosed(now: Date) {
    self.streams = max(0, self.streams - 1)
    if self.streams == 0 { self.idleSince = now }
  }

  /// Installs new settings; a new schedule moves the next renewal. Returns whether the
  /// certificate must be replaced at once (a new lifetime or key type): the caller asks for that.
  package mutating func reconfigure(_ settings: IdentitySettings) -> Bool {
    let reissue = self.settings.requiresReissue(under: settings) && (self.certificate != nil || self.isIssuing)
    self.settings = settings
    self.backoff = settings.backoff
    if let certificate = self.certificate, !self.isIssuing, self.retryAt == nil {
      self.renewAt = self.renewalTime(of: certificate)
    }
    return reissue
  }

  /// The work due at `now`, one item at a time; call until it returns `nil`.
  package mutating func nextWork(now: Date, idleTimeout: Duration) -> Work? {
    if let certificate = self.certificate, now >= certificate.notAfter {
      self.certificate = nil
      self.renewAt = nil
      self.phase = .expired
      if !self.isIssuing, self.retryAt == nil { self.retryAt = now }
      return .withdraw(serial: certificate.serial)
    }
    guard !self.isIssuing else { return nil }
    if let request = self.pending {
      self.pending = nil
      return self.start(request)
    }
    if let retryAt = self.retryAt, now >= retryAt {
      return self.start(Request(credential: self.credential, retries: true))
    }
    if let renewAt = self.renewAt, now >= renewAt {
      return self.start(Request(credential: self.credential, retries: true))
    }
    if let evictAt = self.evictionTime(idleTimeout: idleTimeout), now >= evictAt {
      return .evict
    }
    return nil
  }

  /// When `nextWork` will next have something to do, if nothing happens before; `nil` while an
  /// issuance is in flight (its outcome wakes the supervisor) or when nothing is scheduled.
  package func nextDeadline(idleTimeout: Duration) -> Date? {
    if self.pending != nil, !self.isIssuing { return .distantPast }
    let expiry = self.certificate?.notAfter
    if self.isIssuing { return expiry }
    return [expiry, self.renewAt, self.retryAt, self.evictionTime(idleTimeout: idleTimeout)].compactMap { $0 }.min()
  }

  /// The issuance that `nextWork` started succeeded; `jitterSample` in `-1...1` places the renewal.
  package mutating func issued(_ validity: Validity, credential: CACredential, jitterSample: Double) {
    self.isIssuing = false
    self.isScheduled = true
    self.certificate = validity
    self.credential = credential
    self.jitterSample = jitterSample
    self.renewAt = self.renewalTime(of: validity)
    self.retryAt = nil
    self.backoff.reset()
    self.phase = .serving
  }

  /// The issuance that `nextWork` started failed; `sample` in `0...1` draws the backoff. An
  /// identity not yet scheduled starts retrying only if the request `retries` and the CA did not
  /// refuse it; a scheduled one always retries.
  package mutating func issuanceFailed(
    _ error: CertificateAuthorityError, retries: Bool, now: Date, sample: Double
  ) {
    self.isIssuing = false
    self.phase = .failing(IssuanceFailure(error, at: now))
    guard self.isScheduled || (retries && error.code != .refused) else {
      self.retryAt = nil
      return
    }
    self.isScheduled = true
    if let hint = error.retryAfter {
      self.retryAt = now.addingTimeInterval(
        Self.delay(after: hint, maximum: self.backoff.maximum, sample: sample).seconds)
      return
    }
    var delay = self.backoff.nextDelay(sample: sample)
    if let certificate = self.certificate {
      delay = min(delay, .seconds(max(0, certificate.notAfter.timeIntervalSince(now))))
    }
    self.retryAt = now.addingTimeInterval(delay.seconds)
  }

  /// The wait after a CA's retry hint: never less than the hint, with full jitter on top (up to
  /// the hint again, at most the backoff's `maximum`) so a fleet refused at once comes back spread.
  package static func delay(after hint: Duration, maximum: Duration, sample: Double) -> Duration {
    hint + min(hint, maximum) * max(0, min(1, sample))
  }

  // MARK: - Derived

  /// Whether the identity's certificate can be served at `now`.
  package func isServable(at now: Date) -> Bool {
    self.certificate.map { now < $0.notAfter } ?? false
  }

  private mutating func start(_ request: Request) -> Work {
    self.isIssuing = true
    self.retryAt = nil
    self.renewAt = nil
    self.phase = self.certificate == nil ? .issuing : .renewing
    return .issue(request.credential, retries: request.retries)
  }

  private func renewalTime(of validity: Validity) -> Date {
    self.settings.schedule.renewalTime(
      issuedAt: validity.issuedAt, notAfter: validity.notAfter, jitterSample: self.jitterSample)
  }

  private func evictionTime(idleTimeout: Duration) -> Date? {
    guard !self.isPinned, self.streams == 0, self.pending == nil, let idleSince = self.idleSince else { return nil }
    return idleSince.addingTimeInterval(idleTimeout.seconds)
  }
}
