import Foundation
import SDSAgentCore
import ServiceLifecycle

/// Istio's credential sockets: istio-agent's Envoy asks `credential-uds/socket` for
/// `credentialName: sds://NAME` and `credential-uds/files-socket` for `file-cert:` and
/// `file-root:` names. Each is one more listening socket of the same SDS service, with the SDS
/// socket's mode, callers and limits.
extension Agent {
  static func credentialSockets(
    _ context: AgentContext, service: SecretDiscoveryService
  ) throws -> CredentialSockets? {
    let configuration = context.configuration
    guard let directory = configuration.istioCredentialSockets else { return nil }
    let logger = context.logger
    let servers = try AgentConfiguration.credentialSocketPaths(in: directory).map { path in
      let listener = try UnixSocketListener.bind(path: path, mode: configuration.socketMode)
      let descriptor = listener.descriptor
      return SDSSocketServer(
        descriptor: descriptor, services: [SDSSocketService(service: service)], callers: service.callers,
        peerCredentials: configuration.nodeAgent.identification.usesPeer, limits: SDSServerLimits(), logger: logger,
        onListening: {
          UnixSocketListener.restoreBacklog(of: descriptor, logger: logger)
          logger.info("serving SDS on an Istio credential socket", metadata: ["path": "\(path)"])
        },
        onStop: { listener.removeSocketFile() })
    }
    return CredentialSockets(servers: servers)
  }
}

/// The credential sockets' servers, run as one service: each ends with graceful shutdown, and
/// the end of either ends the agent.
struct CredentialSockets: Service {
  let servers: [SDSSocketServer]

  func run() async throws {
    try await withThrowingDiscardingTaskGroup { group in
      for server in self.servers {
        group.addTask { try await server.run() }
      }
    }
  }
}
