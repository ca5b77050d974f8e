import ArgumentParser
import Foundation
import SDSAgent

struct CheckConfigCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check-config",
    abstract: "Validate the configuration (file, environment, defaults) and print the effective settings."
  )

  @Option(help: "YAML config file (default: SDS_AGENT_CONFIG).")
  var config: String?

  func run() throws {
    let loader = ConfigurationLoader(flags: [:], configFile: self.config)
    do {
      let settings = try loader.effectiveSettings()
      let width = settings.map(\.key.count).max() ?? 0
      print("configuration is valid\(loader.configFile.map { " (\($0))" } ?? "")")
      for setting in settings {
        let padded = setting.key.padding(toLength: width, withPad: " ", startingAt: 0)
        print("  \(padded)  \(setting.value.isEmpty ? "-" : setting.value)  (\(setting.origin))")
      }
    } catch {
      FileHandle.standardError.write(Data("sds-agent check-config: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}
