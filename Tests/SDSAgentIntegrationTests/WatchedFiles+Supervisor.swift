import SDSAgentCore
import SDSAgentTestSupport

extension WatchedFiles {
  /// Runs `body` while the identity supervisor runs on the manual clock: its timer makes the
  /// changes of the table's trust schedule (roots expiring, retained roots leaving).
  func supervising(_ body: () async throws -> Void) async throws {
    let clock = self.clock
    let supervisor = IdentitySupervisor(
      table: self.table, authority: TestAuthority(material: self.ownRoot), counters: AgentCounters(), clock: clock,
      now: { clock.date }, random: { 1 }, wallClockCheck: nil, logger: self.logger)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await supervisor.run() }
      try await body()
      group.cancelAll()
    }
  }
}
