import SDSAgentCore

/// The two SDS streams an Envoy holds on the agent, `default` and `ROOTCA`, on one connection:
/// what every drill watches. Each first response is read and acknowledged before the drill
/// starts; later ones are acknowledged as they are forwarded, as Envoy would.
struct EnvoyStreams: Sendable {
  let certificates: SDSStream
  let bundles: SDSStream
  let firstCertificate: SDSStream.Response
  let firstBundle: SDSStream.Response

  /// A push on either stream, or its end.
  enum Push: Sendable {
    case certificate(SDSStream.Response)
    case bundle(SDSStream.Response)
    /// The agent ended a stream (`nil`) or it failed.
    case ended((any Error)?)
  }

  /// Opens both streams on `socketPath`, reads and acknowledges their first responses, runs
  /// `body`, and resets both streams.
  static func with<Result: Sendable>(
    socketPath: String, _ body: (EnvoyStreams) async throws -> Result
  ) async throws -> Result {
    try await SDSClient.withConnection(socketPath: socketPath) { client in
      try await SDSStream.with(client: client, closing: .abrupt) { certificates in
        try await SDSStream.with(client: client, closing: .abrupt) { bundles in
          certificates.request([SecretResource.tlsCertificate.name])
          bundles.request([SecretResource.validationContext.name])
          guard let firstCertificate = try await certificates.next(), let firstBundle = try await bundles.next() else {
            throw AgentError(.connection, "the agent closed the stream before sending the secrets")
          }
          certificates.request([SecretResource.tlsCertificate.name], acknowledging: firstCertificate)
          bundles.request([SecretResource.validationContext.name], acknowledging: firstBundle)
          return try await body(
            EnvoyStreams(
              certificates: certificates, bundles: bundles, firstCertificate: firstCertificate,
              firstBundle: firstBundle))
        }
      }
    }
  }

  /// Hands every later push of both streams, acknowledged, to `yield` until a stream ends;
  /// run it in a child task.
  func forward(_ yield: @escaping @Sendable (Push) -> Void) async {
    await withTaskGroup(of: Void.self) { group in
      let streams = [
        (self.certificates, SecretResource.tlsCertificate.name, Push.certificate),
        (self.bundles, SecretResource.validationContext.name, Push.bundle),
      ]
      for (stream, name, wrap) in streams {
        group.addTask {
          do {
            while let response = try await stream.next() {
              stream.request([name], acknowledging: response)
              yield(wrap(response))
            }
            yield(.ended(nil))
          } catch {
            yield(.ended(error))
          }
        }
      }
    }
  }
}
