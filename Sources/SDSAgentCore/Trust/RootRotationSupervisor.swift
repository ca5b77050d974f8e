import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import X509

/// Drives staged rotations of the embedded CA's root: *prepare* puts a new root in the trust
/// bundle the host serves; *switch*, one overlap later and once every open stream holding the
/// bundle acknowledged it (at most two overlaps later), makes the new root sign and has the host
/// re-issue everything; *retire*, once no leaf of the old root can be valid, drops the old root.
/// Each phase is made durable by a `RootRotationStore` before it takes effect. The host is the
/// agent (`SDSRootRotationHost`) or `ca serve`. It keeps its own timer rather than the identity
/// table's `TrustSchedule`: `ca serve` has no identity table, the switch's deadline moves with
/// the streams' ACKs, and the switch awaits re-issues that the identity supervisor performs.
package final class RootRotationSupervisor<C: Clock>: Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  private let ca: EmbeddedCA
  private let host: any RootRotationHost
  private let store: any RootRotationStore
  private let makeRoot: @Sendable (Date) throws -> CAMaterial
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  /// What rotates with the root (the JWT signing keys), its own deadlines on this timer.
  private let follower: (any RootRotationFollower)?
  private let rotation: Mutex<RootRotation?>
  private let overlap: Mutex<Duration>
  /// After a step failed to be recorded, when to try it again.
  private let retryAt = Mutex<Date?>(nil)
  private let wake = WakeSignal()
  /// Told of every phase change (start, switch, retirement).
  private let watchers = Mutex<[Int: AsyncStream<Void>.Continuation]>([:])
  private let nextWatcher = Atomic<Int>(0)

  /// - Parameters:
  ///   - resuming: the rotation in progress when the agent started, as the store kept it.
  ///   - makeRoot: makes a new root, with the key type and lifetime of the first.
  package init(
    ca: EmbeddedCA,
    host: any RootRotationHost,
    store: any RootRotationStore,
    resuming: RootRotation?,
    overlap: Duration,
    makeRoot: @escaping @Sendable (Date) throws -> CAMaterial,
    clock: C,
    now: @escaping @Sendable () -> Date,
    logger: Logger,
    follower: (any RootRotationFollower)? = nil
  ) {
    self.ca = ca
    self.host = host
    self.store = store
    self.rotation = Mutex(resuming)
    self.overlap = Mutex(overlap)
    self.makeRoot = makeRoot
    self.clock = clock
    self.now = now
    self.logger = logger
    self.follower = follower
  }

  package var description: String { "RootRotationSupervisor" }

  /// The rotation in progress, if any.
  package var current: RootRotation? { self.rotation.withLock { $0 } }

  /// Waits until `predicate` holds for the rotation in progress (`nil`: none), re-checking at
  /// every phase change: after a prepare is served, after a switch has re-issued, after a
  /// retirement is served.
  package func waitUntil(_ predicate: (RootRotation?) -> Bool) async {
    let (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let id = self.nextWatcher.wrappingAdd(1, ordering: .relaxed).oldValue
    self.watchers.withLock { $0[id] = continuation }
    defer { _ = self.watchers.withLock { $0.removeValue(forKey: id) } }
    if predicate(self.current) { return }
    for await _ in changes where predicate(self.current) {
      return
    }
  }

  private func phaseChanged() {
    for watcher in self.watchers.withLock({ Array($0.values) }) {
      watcher.yield()
    }
  }

  /// The open streams that hold the trust bundle but have not acknowledged the prepared root.
  package var streamsAwaited: [StreamRegistry.Stream] {
    guard let next = self.ca.roots.next?.trustBundle.roots.first else { return [] }
    return self.host.streamsNotAcknowledging(next)
  }

  /// The overlap of rotations started without one.
  package var defaultOverlap: Duration {
    get { self.overlap.withLock { $0 } }
    set { self.overlap.withLock { $0 = newValue } }
  }

  /// Starts a rotation: makes a new root, keeps it, and pushes the bundle with both roots.
  /// `overlap` applies to this rotation only; without it, `defaultOverlap`. An overlap shorter
  /// than the host's `minimumOverlap` is refused (`overlapTooShort`), saying why.
  package func start(overlap: Duration? = nil) throws(RootRotationError) -> RootRotation {
    let now = self.now()
    let overlap = overlap ?? self.defaultOverlap
    if let refusal = self.host.minimumOverlap?.refusal(of: overlap) {
      throw RootRotationError(.overlapTooShort, refusal)
    }
    let (rotation, bundle) = try self.rotation.withLock {
      (current: inout RootRotation?) throws(RootRotationError) -> (RootRotation, TrustBundle) in
      if let current {
        throw RootRotationError(
          .inProgress, "a root rotation is already in progress (phase \(current.phase.rawValue)); see /debug/trust")
      }
      var roots = self.ca.roots
      let next: CAMaterial
      do {
        next = try self.makeRoot(now)
      } catch {
        throw RootRotationError(.generation, "could not make a new root", cause: error)
      }
      let rotation = RootRotation(
        preparedAt: now, overlap: overlap, previousRootSerial: roots.signing.certificate.serialHex,
        nextRootSerial: next.certificate.serialHex)
      try self.store.prepared(rotation, next: next)
      roots.next = next
      current = rotation
      return (rotation, self.ca.install(roots))
    }
    self.logger.notice(
      "root rotation: prepared a new root; it is in the trust bundle from now on",
      metadata: [
        "phase": "prepared", "new_root": "\(rotation.nextRootSerial)", "old_root": "\(rotation.previousRootSerial)",
        "switch_at": "\(rotation.switchAt.formatted(.iso8601))",
        "switch_deadline": "\(rotation.switchDeadline.formatted(.iso8601))",
      ])
    self.publish(bundle)
    self.follower?.rootPrepared(at: now)
    self.wake.signal()
    self.phaseChanged()
    return rotation
  }

  /// Takes the roots and the rotation another writer recorded (a replica of `ca serve` sharing
  /// its datastore): installs them, re-issues if the signing root changed, and re-plans its steps.
  package func adopt(_ rotation: RootRotation?, roots: EmbeddedCA.Roots) async {
    let signedBefore = self.ca.roots.signing.certificate
    self.rotation.withLock { $0 = rotation }
    self.retryAt.withLock { $0 = nil }
    let bundle = self.ca.install(roots)
    if roots.signing.certificate != signedBefore {
      for (subject, error) in await self.host.reissueAll() {
        self.logger.error(
          "root rotation: re-issuing from the new root failed",
          metadata: ["identity": "\(subject)", "error": "\(error)"])
      }
    }
    self.publish(bundle)
    self.wake.signal()
    self.phaseChanged()
  }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [self] in
      let now = self.now()
      var due = self.follower?.nextDeadline
      if let rotation = self.current {
        let next = rotation.nextDeadline(now: now, acknowledged: self.streamsAwaited.isEmpty)
        let step = self.retryAt.withLock { $0 }.map { max($0, next) } ?? next
        due = min(due ?? step, step)
      }
      guard let due else { return nil }
      return self.clock.now.advanced(by: .seconds(max(0, due.timeIntervalSince(now))))
    }
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        if let acknowledged = self.host.trustBundleAcknowledged {
          group.addTask {
            // An acknowledgement of the new root may be what the switch waits for.
            while !Task.isCancelled {
              await acknowledged.wait()
              self.wake.signal()
            }
          }
        }
        for await _ in timer {
          await self.performDueStep()
        }
        group.cancelAll()
      }
    }
  }

  /// Takes the step due now, if any.
  func performDueStep() async {
    self.follower?.performDueSteps(at: self.now())
    guard let rotation = self.current else { return }
    let now = self.now()
    if let retryAt = self.retryAt.withLock({ $0 }), now < retryAt { return }
    let awaited = self.streamsAwaited
    switch rotation.due(now: now, acknowledged: awaited.isEmpty) {
    case .switchRoot(let forced):
      if forced {
        self.logger.warning(
          "root rotation: switching although some streams never acknowledged the new root",
          metadata: [
            "streams": "\(awaited.prefix(10).map { "\($0.id)\($0.nodeID.map { " (\($0))" } ?? "")" })",
            "count": "\(awaited.count)",
          ])
      }
      await self.switchRoot(rotation, now: now)
    case .retire:
      self.retire(now: now)
    case nil:
      break
    }
  }

  private func switchRoot(_ rotation: RootRotation, now: Date) async {
    let roots = self.ca.roots
    guard let next = roots.next else { return }
    var switched = rotation
    switched.switched(at: now, lastOldLeafExpiry: self.host.lastLeafExpiry(now: now))
    do throws(RootRotationError) {
      try self.store.switched(switched, from: roots.signing)
    } catch {
      self.recordingFailed("switch", error, now: now)
      return
    }
    self.retryAt.withLock { $0 = nil }
    let previous = roots.signing.trustBundle.roots.first
    self.ca.install(EmbeddedCA.Roots(signing: next, previous: previous, previousKey: roots.signing.privateKey))
    self.follower?.rootSwitched(at: now)
    self.rotation.withLock { $0 = switched }
    self.logger.notice(
      "root rotation: the new root signs from now on; re-issuing what the old root signed",
      metadata: [
        "phase": "switched", "new_root": "\(switched.nextRootSerial)",
        "retire_at": "\(switched.retireAt!.formatted(.iso8601))",
      ])
    for (subject, error) in await self.host.reissueAll() {
      self.logger.error(
        "root rotation: re-issuing from the new root failed",
        metadata: ["identity": "\(subject)", "error": "\(error)"])
    }
    // Watchers learn of the switch once what it re-issues is served.
    self.phaseChanged()
  }

  private func retire(now: Date) {
    do throws(RootRotationError) {
      try self.store.retired()
    } catch {
      self.recordingFailed("retirement", error, now: now)
      return
    }
    self.retryAt.withLock { $0 = nil }
    let signing = self.ca.roots.signing
    let bundle = self.ca.install(EmbeddedCA.Roots(signing: signing))
    let rotation = self.rotation.withLock { current -> RootRotation? in
      defer { current = nil }
      return current
    }
    self.logger.notice(
      "root rotation: retired the old root; the rotation is complete",
      metadata: ["phase": "retired", "old_root": "\(rotation?.previousRootSerial ?? "?")"])
    self.publish(bundle)
    self.phaseChanged()
  }

  /// A step that could not be made durable is not taken; it is tried again a little later.
  private func recordingFailed(_ step: String, _ error: RootRotationError, now: Date) {
    let retryAt = now.addingTimeInterval(Self.retryDelay.seconds)
    self.retryAt.withLock { $0 = retryAt }
    self.logger.error(
      "root rotation: could not record the \(step); trying again",
      metadata: ["error": "\(error)", "retry_at": "\(retryAt.formatted(.iso8601))"])
  }

  /// How long after a failed step it is tried again.
  package static var retryDelay: Duration { .seconds(5) }

  private func publish(_ bundle: TrustBundle) {
    do throws(CertificateAuthorityError) {
      try self.host.serveTrustBundle(bundle)
    } catch {
      self.logger.error("root rotation: could not serve the new trust bundle", metadata: ["error": "\(error)"])
    }
  }
}
