import ArgumentParser

struct CACommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ca",
    abstract: "Run an Istio-compatible CA for fleets without Istio; rotate an embedded CA's root.",
    subcommands: [CAServeCommand.self, CARotateRootCommand.self, CARevokeCommand.self, CALedgerCommand.self]
  )
}
