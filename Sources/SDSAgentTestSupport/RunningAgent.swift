import Foundation
import Logging
import SDSAgent
import SDSAgentCore
import ServiceLifecycle

/// A real agent on a real Unix socket in a temporary directory, for integration tests.
package struct RunningAgent: Sendable {
  package let agent: Agent
  package let directory: String
  package var socketPath: String { self.agent.configuration.socketPath }

  /// A configuration in a fresh temporary directory.
  package static func configuration(
    certificateTTL: Duration = .seconds(3600),
    socketMode: UInt32 = 0o660,
    caSource: AgentConfiguration.CASource = .generated,
    directory: String = TemporaryDirectory.make()
  ) throws -> AgentConfiguration {
    var builder = AgentConfigurationBuilder(directory: directory)
    builder.certificateTTL = certificateTTL
    builder.socketMode = socketMode
    builder.caSource = caSource
    return try builder.build()
  }

  /// Builds and runs an agent for the duration of `body`, then shuts it down gracefully.
  package static func with<Result: Sendable>(
    _ configuration: AgentConfiguration? = nil,
    _ body: (RunningAgent) async throws -> Result
  ) async throws -> Result {
    let configuration = try configuration ?? Self.configuration()
    var logger = Logger(label: "sds-agent-test")
    logger.logLevel = configuration.logLevel
    let agent = try await Agent.build(configuration: configuration, logger: logger)
    let group = agent.makeServiceGroup(gracefulShutdownSignals: [])
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      defer {
        Task { await group.triggerGracefulShutdown() }
      }
      let running = RunningAgent(
        agent: agent,
        directory: (configuration.socketPath as NSString).deletingLastPathComponent
      )
      let result = try await body(running)
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()
      return result
    }
  }
}

package enum TemporaryDirectory {
  /// A new directory under /tmp, short enough for Unix socket paths.
  package static func make() -> String {
    let path = "/tmp/sds-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }
}
