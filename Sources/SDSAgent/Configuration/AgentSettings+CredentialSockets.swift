import SDSAgentCore

/// Istio's credential sockets (`istio-credential-sockets`), declared like every other setting.
extension AgentSettings {
  package static let istioCredentialSockets = Setting<String>(
    "istio-credential-sockets", "DIR",
    help: "Also serve SDS on DIR/socket (istio-agent's Envoy asks it for credentialName sds://NAME) and "
      + "DIR/files-socket (file-cert: and file-root: names); in an Istio pod DIR is /var/run/secrets/credential-uds.",
    allowed: "an absolute directory", reload: .restart,
    parse: { $0.hasPrefix("/") && !$0.split(separator: "/").contains("..") ? $0 : nil },
    effective: { $0.istioCredentialSockets ?? "" })

  /// The directory of the credential sockets, refused when one of them would be another socket of the agent.
  static func credentialSocketsDirectory(
    _ settings: SettingsSource, socketPath: String, workloadAPISocket: String?
  ) throws(ConfigurationError) -> String? {
    guard let directory = try settings.read(istioCredentialSockets) else { return nil }
    let taken = [socketPath, workloadAPISocket].compactMap { $0 }
    for path in AgentConfiguration.credentialSocketPaths(in: directory) where taken.contains(path) {
      throw ConfigurationError(
        key: "istio-credential-sockets", value: directory,
        allowed: "a directory whose socket and files-socket are not the agent's other sockets (\(path) is)")
    }
    return directory
  }
}

extension AgentConfiguration {
  /// The credential socket and the files socket istio-agent's Envoy connects to, in `directory`.
  package static func credentialSocketPaths(in directory: String) -> [String] {
    let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    return [base + "/socket", base + "/files-socket"]
  }
}
