import GRPCCore
import ServiceLifecycle

/// Runs a `GRPCServer` as a `Service`: serves until graceful shutdown, then stops accepting,
/// lets open RPCs finish and returns.
package struct GRPCServerService<Transport: ServerTransport>: Service, CustomStringConvertible {
  let name: String
  let server: GRPCServer<Transport>
  /// Runs beside the server, for work that waits until the transport listens.
  var alongside: @Sendable () async -> Void = {}
  let onStop: @Sendable () -> Void

  package init(
    name: String, server: GRPCServer<Transport>, alongside: @escaping @Sendable () async -> Void = {},
    onStop: @escaping @Sendable () -> Void
  ) {
    self.name = name
    self.server = server
    self.alongside = alongside
    self.onStop = onStop
  }

  package var description: String { "GRPCServer(\(self.name))" }

  package func run() async throws {
    defer { self.onStop() }
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.alongside() }
      try await withGracefulShutdownHandler {
        try await self.server.serve()
      } onGracefulShutdown: {
        self.server.beginGracefulShutdown()
      }
    }
  }
}
