import ArgumentParser
import SDSAgent

@main
struct SDSAgentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sds-agent",
    abstract: "A node-local certificate agent that serves Envoy's Secret Discovery Service on a Unix socket.",
    version: AgentVersion.current,
    subcommands: [
      RunCommand.self, FetchCommand.self, StatusCommand.self, DrillCommand.self, CheckConfigCommand.self,
      CACommand.self,
    ],
    defaultSubcommand: RunCommand.self
  )
}
