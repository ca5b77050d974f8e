import Foundation
import SDSAgentCore

/// Session ticket keys for a fleet of gateways: one node-wide row per configured name.
extension Agent {
  /// The keys' watcher, when any are configured; it refuses the start over an unusable seed.
  static func sessionTicketKeys(
    _ context: AgentContext, table: IdentityTable
  ) throws(ConfigurationError) -> SessionTicketKeyWatcher<ContinuousClock>? {
    let configuration = context.configuration
    guard !configuration.sessionTicketKeys.isEmpty else { return nil }
    return try SessionTicketKeyWatcher(
      sources: configuration.sessionTicketKeys, node: table.node,
      checksCallers: configuration.nodeAgent.identification != .agent, counters: context.counters,
      watching: context.fileWatch, clock: context.clock, now: context.now, logger: context.logger)
  }
}
