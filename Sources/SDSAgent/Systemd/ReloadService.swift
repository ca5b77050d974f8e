import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import UnixSignals

/// Reload on SIGHUP: re-reads the configuration and has the appliers that `AgentSettings`'
/// live declarations name apply it (log level, certificate lifetime, key type, rotation
/// schedule, workload rules, JWT keys, caller limits, idle timeouts, …) without closing any SDS
/// stream; a change to any other setting is logged as needing a restart. A broken configuration is refused with an error and the running one stays.
struct ReloadService: Service, CustomStringConvertible {
  let loader: ConfigurationLoader
  let current: AgentConfiguration
  /// Created while the agent is built, so a SIGHUP never finds the default action (exit).
  let signals: UnixSignalsSequence
  let appliers: ReloadAppliers
  let notifier: SystemdNotifier
  let logger: Logger

  var description: String { "ReloadService" }

  /// The keys whose change needs a restart, as their declarations say.
  static func restartRequired(from old: AgentConfiguration, to new: AgentConfiguration) -> [String] {
    AgentSettings.restartRequired(from: old, to: new)
  }

  func run() async throws {
    await cancelWhenGracefulShutdown {
      var running = self.current
      for await _ in self.signals {
        self.notifier.reloading()
        do {
          let next = try self.loader.load()
          try await self.appliers.apply(next)
          let ignored = Self.restartRequired(from: running, to: next)
          if !ignored.isEmpty {
            self.logger.warning("some changes take effect only after a restart", metadata: ["keys": "\(ignored)"])
          }
          running = next
          self.logger.info(
            "reloaded configuration",
            metadata: [
              "log_level": "\(next.logLevel)", "cert_ttl": "\(DurationParser.format(next.certificateTTL))",
              "rotation_ratio": "\(next.rotation.ratio)",
            ]
          )
        } catch {
          self.logger.error("refused the new configuration; keeping the running one", metadata: ["error": "\(error)"])
        }
        self.notifier.ready()
      }
    }
  }
}
