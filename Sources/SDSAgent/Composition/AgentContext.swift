import Foundation
import Logging
import SDSAgentCore

/// What every builder of the agent shares: the configuration it runs, the clocks, the counters
/// and the logger.
struct AgentContext: Sendable {
  let configuration: AgentConfiguration
  let counters: AgentCounters
  /// Drives every timer of the agent.
  let clock: ContinuousClock
  /// The wall clock that dates certificates and deadlines.
  let now: @Sendable () -> Date
  let logger: Logger
  /// The one inotify watch every file watcher follows its files through.
  let fileWatch: FileWatchService
}
