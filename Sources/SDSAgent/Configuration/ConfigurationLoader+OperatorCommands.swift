import Foundation
import SDSAgentCore

extension ConfigurationLoader {
  /// The config file a packaged agent reads (`SDS_AGENT_CONFIG` in its unit).
  package static let packagedConfigFile = "/etc/sds-agent/config.yaml"

  /// The loader for an operator's command (`status`, `drill`, `ca rotate-root`): the same flags,
  /// environment and config file as `run`; when none of them names a config file, the packaged one
  /// if it exists, so `sds-agent status` works on a node installed from the package.
  package static func forOperatorCommand(
    flags: [String: [String]],
    configFile: String?,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    packagedConfigFile: String = Self.packagedConfigFile
  ) -> ConfigurationLoader {
    let named = ConfigurationLoader(flags: flags, environment: environment, configFile: configFile)
    guard named.configFile == nil, FileManager.default.fileExists(atPath: packagedConfigFile) else { return named }
    return ConfigurationLoader(flags: flags, environment: environment, configFile: packagedConfigFile)
  }
}
