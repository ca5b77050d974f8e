import SDSAgentCore

/// How callers are identified and limited: one identity for everyone (the default), or a node
/// agent serving each workload its own identity.
package struct NodeAgentConfiguration: Sendable, Equatable {
  package let identification: CallerIdentification
  package let rules: [WorkloadRule]
  /// PEM public keys or a JWKS that verify forwarded tokens.
  package let jwtKeysFile: String?
  package let limits: CallerLimits

  package init(
    identification: CallerIdentification = .agent,
    rules: [WorkloadRule] = [],
    jwtKeysFile: String? = nil,
    limits: CallerLimits = .init()
  ) {
    self.identification = identification
    self.rules = rules
    self.jwtKeysFile = jwtKeysFile
    self.limits = limits
  }

  /// Checks that the mode has what it needs; `remoteCA` is fetch mode, where the CA can verify
  /// forwarded tokens itself.
  package func validate(remoteCA: Bool) throws(ConfigurationError) {
    let mode = self.identification
    if mode.usesPeer, self.rules.isEmpty {
      throw ConfigurationError(
        key: "workload", value: "", allowed: "at least one rule, because caller-identity is \(mode.rawValue)")
    }
    if !mode.usesPeer, let rule = self.rules.first {
      throw ConfigurationError(
        key: "workload", value: rule.description,
        allowed: "no rules unless caller-identity is peer, peer-or-token or peer-and-token")
    }
    if mode.usesToken, self.jwtKeysFile == nil, !remoteCA {
      throw ConfigurationError(
        key: "jwt-keys", value: "",
        allowed:
          "a file of keys that verify forwarded tokens, because caller-identity is \(mode.rawValue) with the local CA")
    }
  }
}
