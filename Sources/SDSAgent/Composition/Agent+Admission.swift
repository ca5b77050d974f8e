import Foundation
import SDSAgentCore

/// Who callers are and how often they may ask.
extension Agent {
  static func admission(_ context: AgentContext, table: IdentityTable, remoteCA: Bool) async throws -> CallerAdmission {
    let configuration = context.configuration
    return CallerAdmission(
      attestor: try await Self.attestor(configuration.nodeAgent, of: configuration, remoteCA: remoteCA),
      limiter: CallerRateLimiter(limits: configuration.nodeAgent.limits),
      table: table,
      counters: context.counters,
      logger: context.logger
    )
  }

  /// Identifies callers as `node` says, for the agent `configuration` describes.
  static func attestor(
    _ node: NodeAgentConfiguration, of configuration: AgentConfiguration, remoteCA: Bool
  ) async throws -> CallerAttestor {
    var authenticator: JWTCallerAuthenticator?
    if let path = node.jwtKeysFile {
      authenticator = try await JWTCallerAuthenticator.load(keysFile: path, trustDomain: configuration.trustDomain)
    }
    return CallerAttestor(
      mode: node.identification,
      rules: node.rules,
      agentIdentity: configuration.identity,
      authenticator: authenticator,
      remoteCA: remoteCA,
      executable: ProcessExecutable.path(of:)
    )
  }
}
