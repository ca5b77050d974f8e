import ArgumentParser
import SDSAgent
import SDSAgentCore

/// Finds a running agent's endpoints the way `run` would configure them: `--admin`/`--socket`,
/// `SDS_AGENT_ADMIN`/`SDS_AGENT_SOCKET`, then the config file (`--config`, `SDS_AGENT_CONFIG`, or
/// the packaged `/etc/sds-agent/config.yaml` when it exists).
enum AdminEndpoint {
  static func find(admin: String?, config: String?) throws -> AgentConfiguration.AdminAddress {
    try self.endpoints(socket: nil, admin: admin, config: config).admin
  }

  static func endpoints(socket: String?, admin: String?, config: String?) throws -> (
    socketPath: String, admin: AgentConfiguration.AdminAddress
  ) {
    var flags: [String: [String]] = [:]
    flags[AgentSettings.socket.key] = socket.map { [$0] }
    flags[AgentSettings.admin.key] = admin.map { [$0] }
    let loader = ConfigurationLoader.forOperatorCommand(flags: flags, configFile: config)
    do {
      let endpoints = try loader.agentEndpoints()
      guard let address = endpoints.admin else {
        let whereLooked =
          loader.configFile.map { "\($0) enables no admin endpoint (its key `admin`)" }
          ?? "no --admin, no SDS_AGENT_ADMIN and no config file (\(ConfigurationLoader.packagedConfigFile) does not exist)"
        throw ValidationError(
          "--admin is required: \(whereLooked). Give the agent's admin endpoint, e.g. --admin unix:/run/sds-agent/private/admin.sock or 127.0.0.1:15000"
        )
      }
      return (endpoints.socketPath, address)
    } catch let error as ConfigurationError {
      throw ValidationError(error.description)
    }
  }
}
