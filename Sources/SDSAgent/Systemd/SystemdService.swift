import Foundation
import GRPCCore
import Logging
import SDSAgentCore
import ServiceLifecycle

/// Talks to systemd: `READY=1` once the socket accepts and a certificate exists, a one-line
/// `STATUS=`, `WATCHDOG=1` at half of `$WATCHDOG_USEC` after the agent answered an SDS fetch on
/// its own socket (so a hung server stops the pings), and `STOPPING=1` on shutdown.
struct SystemdService: Service, CustomStringConvertible {
  let notifier: SystemdNotifier
  let watchdogInterval: Duration?
  let socketPath: String
  let identities: IdentityTable
  let counters: AgentCounters
  /// Paces the watchdog pings and bounds each health check.
  let clock: ContinuousClock
  let logger: Logger

  var description: String { "SystemdService" }

  func run() async throws {
    guard self.notifier.isEnabled else { return }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        // Sent as soon as shutdown begins, whether or not the agent ever became ready.
        try? await gracefulShutdown()
        self.notifier.stopping()
      }
      group.addTask {
        try? await cancelWhenGracefulShutdown {
          await self.identities.pinnedCache.waitUntil { $0.svid != nil }
          try Task.checkCancellation()
          self.notifier.ready(status: self.status())
          self.logger.debug("notified systemd: READY=1")
          try await self.keepWatchdogFed()
        }
      }
      await group.waitForAll()
    }
  }

  private func keepWatchdogFed() async throws {
    let interval = self.watchdogInterval ?? .seconds(10)
    while true {
      try await self.clock.sleep(for: interval)
      guard self.watchdogInterval != nil else {
        self.notifier.status(self.status())
        continue
      }
      if await self.serverAnswers(within: interval) {
        self.notifier.watchdog(status: self.status())
      } else {
        self.logger.error("the SDS server did not answer its own health check; withholding the watchdog ping")
      }
    }
  }

  /// Whether a `FetchSecrets` on the agent's own socket gets an answer (any answer).
  private func serverAnswers(within limit: Duration) async -> Bool {
    let answer = try? await withTimeLimit(limit, on: self.clock) { [socketPath = self.socketPath] in
      do {
        _ = try await SDSClient.fetch(socketPath: socketPath, names: [SecretResource.validationContext.name])
        return true
      } catch let error as RPCError {
        // "No certificate yet" is an answer from a live server; a failed connection is not.
        return error.code != .unavailable || SecretsNotReady.matches(error)
      } catch {
        return false
      }
    }
    return answer.flatMap { $0 } ?? false
  }

  func status() -> String {
    let rows = self.identities.snapshot()
    let now = Date()
    let served = rows.filter { $0.isServable(at: now) }.count
    let identities =
      rows.count == 1
      ? (served == 1 ? "1 identity (\(rows[0].identity))" : "no certificate yet for \(rows[0].identity)")
      : "\(served) of \(rows.count) identities"
    let rotation =
      rows.compactMap(\.renewAt).min().map { "next rotation \($0.formatted(.iso8601))" } ?? "rotation not scheduled"
    return "serving \(identities), \(self.counters.openStreams) streams open, \(rotation)"
  }
}
