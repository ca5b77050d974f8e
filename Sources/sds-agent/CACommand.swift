import ArgumentParser

struct CACommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ca",
    abstract: "Run an Istio-compatible CA for fleets without Istio.",
    subcommands: [CAServeCommand.self]
  )
}
