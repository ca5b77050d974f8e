import Foundation
import Logging
import PostgresNIO
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Keeps a replica on the datastore's CA: on every notification (`LISTEN`) and, as the safety net
/// for a notification missed while disconnected, every `rereadInterval`, it reads the roots and
/// the rotation record and hands any change to the rotation supervisor, then rewrites
/// `<state-dir>/ca-cert.pem`; it uploads what this replica signed and has the revocation lists
/// signed again when the shared revocations changed. A datastore that is down leaves the replica
/// signing with what it holds.
package final class DatastoreFollower<C: Clock>: Service, Sendable where C.Duration == Duration {
  let datastore: CADatastore
  let supervisor: RootRotationSupervisor<C>?
  let revocations: (record: DatastoreRevocationRecord, service: RevocationService<C>)?
  let ca: EmbeddedCA
  let stateDirectory: String
  let clock: C
  let rereadInterval: Duration
  let logger: Logger
  /// The JWT signing keys, derived from the roots (`DatastoreJWTKeys`) and following them.
  let jwtKeys: JWTKeyRing?
  private let wake = WakeSignal()
  /// The bundle last written to `ca-cert.pem`, and whether the last read failed (logged once per outage).
  private let seen: Mutex<(written: TrustBundle?, failing: Bool)>
  /// How long one re-read may take: the connect timeout, and a little for the queries.
  var readLimit: Duration { self.datastore.address.connectTimeout + .seconds(2) }
  /// The revocation document last adopted.
  private let revocationDocument = Mutex<String?>(nil)

  package init(
    datastore: CADatastore, supervisor: RootRotationSupervisor<C>?,
    revocations: (record: DatastoreRevocationRecord, service: RevocationService<C>)?, ca: EmbeddedCA,
    stateDirectory: String, clock: C, rereadInterval: Duration = .seconds(1), logger: Logger,
    jwtKeys: JWTKeyRing? = nil
  ) {
    self.datastore = datastore
    self.supervisor = supervisor
    self.revocations = revocations
    self.ca = ca
    self.stateDirectory = stateDirectory
    self.clock = clock
    self.rereadInterval = rereadInterval
    self.logger = logger
    self.jwtKeys = jwtKeys
    self.seen = Mutex((ca.trustBundle, false))
  }

  package func run() async {
    let timer = DeadlineTimer(clock: self.clock, wake: self.wake) { [clock, rereadInterval] in
      clock.now.advanced(by: rereadInterval)
    }
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask { await self.listen() }
        for await _ in timer {
          await self.refresh()
        }
        group.cancelAll()
      }
    }
  }

  /// Reads the datastore and adopts what changed.
  package func refresh() async {
    let state: SharedCAState?
    do {
      // A read can hang when PostgreSQL stops in the middle of it; bounded, the next re-read
      // goes on and the outage is noticed (the hung read is left to end with its connection).
      let read = Task {
        try await self.datastore.reading { connection in
          let state = try await self.datastore.state(connection)
          try await self.followRevocations(connection)
          return state
        }
      }
      // Stopping `ca serve` cancels the read too, hung or not.
      state = try await withTaskCancellationHandler {
        try await withAbandoningTimeLimit(self.readLimit, on: ContinuousClock()) { _ = try await read.value }
        return try await read.value
      } onCancel: {
        read.cancel()
      }
    } catch {
      let first = self.seen.withLock { seen in
        defer { seen.failing = true }
        return !seen.failing
      }
      if first {
        let reason = error is TimeLimitPassed ? "no answer within \(self.readLimit)" : "\(error)"
        self.logger.warning("datastore: cannot be read; signing on with the CA held", metadata: ["error": "\(reason)"])
      }
      return
    }
    let recovered = self.seen.withLock { seen in
      defer { seen.failing = false }
      return seen.failing
    }
    if recovered { self.logger.notice("datastore: reachable again") }
    if let state { await self.adopt(state) }
    let bundle = self.ca.trustBundle
    guard self.seen.withLock({ $0.written }) != bundle else { return }
    do {
      try TrustBundleFile.write(bundle, stateDirectory: self.stateDirectory)
      self.seen.withLock { $0.written = bundle }
    } catch {
      self.logger.error("datastore: cannot write the trust bundle", metadata: ["error": "\(error)"])
    }
  }

  private func followRevocations(_ connection: PostgresConnection) async throws {
    guard let (record, service) = self.revocations else { return }
    try await record.upload(connection)
    guard let document = try await self.datastore.revocationDocument(connection),
      document != self.revocationDocument.withLock({ $0 })
    else { return }
    if record.adopt(try CADatastore.revocations(from: document)) {
      service.publish()
      self.logger.notice("datastore: followed a change of the shared revocations")
    }
    self.revocationDocument.withLock { $0 = document }
  }

  private func adopt(_ state: SharedCAState) async {
    guard let supervisor = self.supervisor else { return }
    let local = self.ca.roots
    let localSerials = SharedCAState(roots: local, rotationRecord: nil).rootSerials
    let localRecord = try? supervisor.current.map(SharedCAState.encoded)
    guard state.rootSerials != localSerials || state.rotationRecord != localRecord else { return }
    do {
      let rotation = try state.rotation()
      // Before the supervisor re-plans, so that its timer sees the keys' retirement.
      if let ring = self.jwtKeys {
        let now = Date()
        ring.replace(
          try DatastoreJWTKeys.keys(
            of: state.roots, rotation: rotation, trustDomain: ring.trustDomain, ttl: ring.ttl, now: now), at: now)
      }
      await supervisor.adopt(rotation, roots: state.roots)
      self.logger.notice(
        "datastore: followed a change of the shared CA",
        metadata: [
          "phase": "\(rotation?.phase.rawValue ?? "idle")", "signing": "\(state.roots.signing.certificate.serialHex)",
        ])
    } catch {
      self.logger.error("datastore: cannot follow the shared CA", metadata: ["error": "\(error)"])
    }
  }

  /// Listens for notifications, reconnecting after a pause when the connection is lost.
  private func listen() async {
    while !Task.isCancelled {
      do {
        let connection = try await self.datastore.connect()
        do {
          try await connection.listen(on: DatastoreSchema.notificationChannel) { notifications in
            // Changes made while not listening are read now.
            self.wake.signal()
            for try await _ in notifications { self.wake.signal() }
          }
        } catch {
          try? await connection.close()
          throw error
        }
        try? await connection.close()
      } catch {
        self.logger.debug("datastore: listening interrupted", metadata: ["error": "\(PostgresFailure(error))"])
      }
      // A pause before reconnecting, not a synchronisation: the periodic re-read goes on meanwhile.
      try? await self.clock.sleep(for: self.rereadInterval)
    }
  }
}
