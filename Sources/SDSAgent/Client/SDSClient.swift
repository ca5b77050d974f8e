import EnvoySDSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgentCore
import SwiftProtobuf

/// A small SDS client over the agent's Unix socket, for `sds-agent fetch` and for tests.
package struct SDSClient: Sendable {
  package typealias Client = Envoy_Service_Secret_V3_SecretDiscoveryService.Client<HTTP2ClientTransport.Posix>

  /// Connects to `socketPath`, runs `body`, and closes the connection.
  package static func withConnection<Result: Sendable>(
    socketPath: String,
    _ body: (Client) async throws -> Result
  ) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath),
      transportSecurity: .plaintext
    )
    return try await withGRPCClient(transport: transport) { client in
      try await body(Client(wrapping: client))
    }
  }

  /// `FetchSecrets` for `names`, decoded.
  package static func fetch(socketPath: String, names: [String]) async throws -> [SecretSummary] {
    try await self.withConnection(socketPath: socketPath) { client in
      var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
      request.resourceNames = names
      request.typeURL = SecretResource.typeURL
      request.node.id = "sds-agent-fetch"
      let response = try await client.fetchSecrets(request)
      return try response.resources.map(SecretSummary.init(any:))
    }
  }
}
