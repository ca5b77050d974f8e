import ArgumentParser
import Foundation
import Logging
import SDSAgent
import SDSAgentCore

struct RunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Serve SDS on a Unix socket (the default command). Every option can also be set as SDS_AGENT_<KEY>.",
    usage: "sds-agent [run] [--<key> <value> | --<key>=<value>] ...",
    discussion: AgentSettings.help()
  )

  /// Read against `AgentSettings.all`, the one declaration of every option, not by
  /// ArgumentParser: the same table serves the environment, the config file and check-config.
  @Argument(parsing: .allUnrecognized, help: .hidden)
  var arguments: [String] = []

  func run() async throws {
    let loader: ConfigurationLoader
    let configuration: AgentConfiguration
    do {
      loader = try ConfigurationLoader(arguments: self.arguments)
      configuration = try loader.load()
    } catch {
      throw ValidationError(error.description)
    }
    let logging = AgentLogging.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
    let logger = Logger(label: "sds-agent")

    let agent: Agent
    do {
      agent = try await Agent.build(configuration: configuration, loader: loader, logging: logging, logger: logger)
    } catch {
      logger.critical("cannot start", metadata: ["error": "\(error)"])
      throw ExitCode(1)
    }
    let node = configuration.nodeAgent
    let callers =
      node.identification == .agent
      ? "identity \(configuration.identity)"
      : "callers identified by \(node.identification.rawValue), \(node.rules.count) workload rule(s)"
    let workloadAPI = agent.workloadAPISocketPath.map {
      "sds-agent: serving the SPIFFE Workload API: \(WorkloadAPIConfiguration.endpointVariable($0))\n"
    }
    let banner = """
      sds-agent: serving SDS on \(agent.socketPath) (\(callers))
      --- envoy bootstrap snippet ---
      \(EnvoyBootstrapSnippet.yaml(socketPath: agent.socketPath, identification: node.identification))--- end ---
      \(workloadAPI ?? "")
      """
    // Unbuffered, so a supervisor or test reading a pipe sees it at once.
    FileHandle.standardOutput.write(Data(banner.utf8))
    logger.info(
      "serving SDS",
      metadata: [
        "socket": "\(agent.socketPath)", "identity": "\(configuration.identity)",
        "caller_identity": "\(node.identification.rawValue)",
        "cert_ttl": "\(DurationParser.format(configuration.certificateTTL))",
        "admin": "\(configuration.admin?.description ?? "off")",
      ]
    )
    try await agent.run()
    logger.info("stopped")
  }
}
