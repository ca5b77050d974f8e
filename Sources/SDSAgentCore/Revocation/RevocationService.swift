import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the embedded CA's revocation lists served to Envoy: signs each own root's list (at once
/// after a revocation or a change of roots, and again halfway through its validity, well before
/// nextUpdate, past which Envoy refuses every handshake) and installs them in its host (the node's
/// trust, or `ca serve`'s answer to `GET /ca/crl`).
/// It waits for the next signing, a revocation or new roots; it never polls.
package final class RevocationService<C: Clock>: Service, CustomStringConvertible, Sendable
where C.Duration == Duration {
  private let ca: EmbeddedCA
  private let record: any RevocationRecord
  private let host: any RevocationHost
  private let clock: C
  private let now: @Sendable () -> Date
  private let logger: Logger
  /// When the next signing is due; the lock also keeps publications in order.
  private let state = Mutex(State())
  /// After a failed signing, when to try again.
  private let retryAfter: Duration
  /// How long a revocation waits for its holder's new certificate before the list goes out.
  private let reissueGrace: Duration
  /// Whether a CA that signs through an intermediate signs the intermediate's list (the agent).
  private let throughIntermediates: Bool

  private struct State {
    var nextSigning: Date?
    var notRevocable: String?
  }

  package init(
    ca: EmbeddedCA, record: any RevocationRecord, host: any RevocationHost, clock: C,
    now: @escaping @Sendable () -> Date, logger: Logger, retryAfter: Duration = .seconds(60),
    reissueGrace: Duration = .seconds(2), throughIntermediates: Bool = false
  ) {
    self.throughIntermediates = throughIntermediates
    self.ca = ca
    self.record = record
    self.host = host
    self.clock = clock
    self.now = now
    self.logger = logger
    self.retryAfter = retryAfter
    self.reissueGrace = reissueGrace
  }

  package var description: String { "RevocationService" }

  /// When the lists are signed next; `nil` before the first publication.
  package var nextSigning: Date? { self.state.withLock { $0.nextSigning } }

  package func run() async {
    self.publish()
    let timer = DeadlineTimer(clock: self.clock, wake: self.ca.rootsInstalled) { [self] in
      guard let due = self.nextSigning else { return nil }
      return self.clock.now.advanced(by: .seconds(max(0, due.timeIntervalSince(self.now()))))
    }
    await cancelWhenGracefulShutdown {
      for await _ in timer {
        self.publish()
      }
    }
  }

  /// Revokes what `request` names. Its holder is re-issued first (a new key, pushed), for at
  /// most `reissueGrace`, so that it is not refused with the old one; then the lists go out.
  package func revoke(
    _ request: Revocations.Request, reason: RevocationReason
  ) async throws -> (outcome: Revocations.Outcome, reissued: [SPIFFEID]) {
    let now = self.now()
    let issued = self.record.issued
    let outcome = try self.record.revoke(request, reason: reason, at: now)
    guard case .revoked(let entries) = outcome else { return (outcome, []) }
    for entry in entries {
      self.logger.notice(
        "revoked a certificate",
        metadata: [
          "serial": "\(entry.serial)", "identity": "\(issued.row(serial: entry.serial)?.identity.description ?? "")",
          "reason": "\(reason.rawValue)",
        ])
    }
    let holders = Set(entries.compactMap { issued.row(serial: $0.serial)?.identity }).sorted {
      $0.description < $1.description
    }
    let reissued = await self.reissue(holders)
    self.publish()
    return (outcome, reissued)
  }

  /// Issues a new certificate for each holder the table serves; the ones served in time.
  private func reissue(_ holders: [SPIFFEID]) async -> [SPIFFEID] {
    await withTaskGroup(of: [SPIFFEID]?.self) { group in
      group.addTask {
        await withTaskGroup(of: SPIFFEID?.self) { rotations in
          for identity in holders {
            rotations.addTask { await self.reissue(identity) ? identity : nil }
          }
          var served: [SPIFFEID] = []
          for await identity in rotations {
            if let identity { served.append(identity) }
          }
          return served.sorted { $0.description < $1.description }
        }
      }
      group.addTask { [clock, reissueGrace] in
        try? await clock.sleep(for: reissueGrace)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first ?? []
    }
  }

  /// Issues a new certificate for `identity`; true once it is served.
  private func reissue(_ identity: SPIFFEID) async -> Bool {
    do {
      return try await self.host.reissue(identity)
    } catch {
      self.logger.error(
        "revocation: the holder of a revoked certificate could not be re-issued",
        metadata: ["identity": "\(identity)", "error": "\(error)"])
      return false
    }
  }

  /// Signs the lists due and installs them, or installs none when a trusted root cannot sign one.
  package func publish() {
    self.state.withLock { state in
      // Read under the lock, so that a publication never installs older roots' lists.
      let now = self.now()
      let roots = self.ca.roots
      let notRevocable = roots.notRevocable(throughIntermediates: self.throughIntermediates)
      if notRevocable != state.notRevocable, let reason = notRevocable {
        self.logger.warning(
          "revocation lists are not served: revoked certificates are accepted until they expire",
          metadata: ["reason": "\(reason)"])
      }
      state.notRevocable = notRevocable
      do {
        let signed = try self.record.lists(
          of: roots.crlIssuers(throughIntermediates: self.throughIntermediates), at: now)
        if self.throughIntermediates {
          try self.host.installRevocationLists(signed.lists, intermediates: roots.intermediates)
        } else {
          try self.host.installRevocationLists(signed.lists)
        }
        state.nextSigning = signed.nextSigning == .distantFuture ? nil : signed.nextSigning
      } catch {
        state.nextSigning = now.addingTimeInterval(self.retryAfter.seconds)
        self.logger.error(
          "revocation: cannot sign or serve the revocation lists; the lists served are kept",
          metadata: ["error": "\(error)", "retry_at": "\(state.nextSigning!.formatted(.iso8601))"])
      }
    }
  }
}
