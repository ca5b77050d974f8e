import ArgumentParser
import SDSAgent
import SDSAgentCore

/// Finds a running agent's admin endpoint the way `run` would configure it: `--admin`,
/// `SDS_AGENT_ADMIN`, then the config file (`--config` or `SDS_AGENT_CONFIG`).
enum AdminEndpoint {
  static func find(admin: String?, config: String?) throws -> AgentConfiguration.AdminAddress {
    var flags: [String: [String]] = [:]
    flags[AgentSettings.admin.key] = admin.map { [$0] }
    do {
      guard let address = try ConfigurationLoader(flags: flags, configFile: config).agentEndpoints().admin else {
        throw ValidationError(
          "--admin is required: the agent's admin endpoint, e.g. 127.0.0.1:15000 or unix:/run/sds-agent/admin.sock")
      }
      return address
    } catch let error as ConfigurationError {
      throw ValidationError(error.description)
    }
  }
}
