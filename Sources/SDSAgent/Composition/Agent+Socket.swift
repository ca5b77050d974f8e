import Foundation
import SDSAgentCore

/// The SDS socket: the one systemd passed, or one bound at `socket`, and the server on it.
extension Agent {
  struct SDSSocket {
    let server: SDSSocketServer
    /// The socket's path, as systemd named it or as configured.
    let path: String
    /// Reached once the transport listens, with the socket's backlog set.
    let listening: Milestone
  }

  static func sdsSocket(
    _ context: AgentContext, service: SecretDiscoveryService, workloadAPI: WorkloadAPIService?,
    environment: [String: String]
  ) throws -> SDSSocket {
    let configuration = context.configuration
    let logger = context.logger
    DescriptorLimit.raiseToHardLimit(logger: logger)
    let listening = Milestone()
    let descriptor: Int32
    let ownsSocketFile: UnixSocketListener?
    if let activated = try SocketActivation.listeningDescriptor(environment: environment) {
      descriptor = activated
      ownsSocketFile = nil
      logger.info(
        "using the socket passed by systemd",
        metadata: ["path": "\(SocketActivation.path(of: activated) ?? "?")"]
      )
    } else {
      let listener = try UnixSocketListener.bind(path: configuration.socketPath, mode: configuration.socketMode)
      descriptor = listener.descriptor
      ownsSocketFile = listener
    }
    let server = SDSSocketServer(
      descriptor: descriptor,
      services: [SDSSocketService(service: service)] + Self.workloadAPISocketServices(workloadAPI),
      callers: service.callers, peerCredentials: configuration.nodeAgent.identification.usesPeer,
      limits: SDSServerLimits(), logger: logger,
      onListening: {
        UnixSocketListener.restoreBacklog(of: descriptor, logger: logger)
        listening.reach()
      },
      onStop: { ownsSocketFile?.removeSocketFile() })
    return SDSSocket(
      server: server, path: SocketActivation.path(of: descriptor) ?? configuration.socketPath, listening: listening)
  }
}
