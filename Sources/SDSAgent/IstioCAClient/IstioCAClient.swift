import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// A `CertificateAuthority` that asks an Istio-compatible CA: a CSR for the workload's fresh key,
/// the caller's token as `authorization: Bearer`, the `ClusterID` header; and a response that is
/// verified before anything of it is served.
package final class IstioCAClient: CertificateAuthority, Service, CustomStringConvertible {
  package let configuration: IstioCAConfiguration
  let logger: Logger
  /// One long-lived connection per CA address, reused by every request, as Istio's agent does.
  /// Their trust roots are read when they are made; `reloadRoots()` replaces them.
  let clients: Mutex<[GRPCClient<HTTP2ClientTransport.Posix>]>
  /// Connections made by `reloadRoots()`, for `run()` to run.
  private let replacements: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation
  private let replaced: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
  /// Which address each call tries first, and which rest after a failure.
  let rotation: Mutex<CAAddressRotation>
  /// A sample in `0...1` for the rotation's backoff.
  let random: @Sendable () -> Double

  /// - Parameter node: a name that places this agent's first call among the addresses (the
  ///   host's name), so that a fleet spreads over the CA's replicas.
  package init(
    configuration: IstioCAConfiguration, logger: Logger, node: String = ProcessInfo.processInfo.hostName,
    random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }
  ) throws {
    self.configuration = configuration
    self.logger = logger
    self.clients = Mutex(try Self.makeClients(configuration))
    (self.replaced, self.replacements) = AsyncStream.makeStream()
    let count = configuration.addresses.count
    self.rotation = Mutex(
      CAAddressRotation(count: count, start: CAAddressRotation.startIndex(for: node, count: count)))
    self.random = random
  }

  private static func makeClients(_ configuration: IstioCAConfiguration) throws -> [GRPCClient<
    HTTP2ClientTransport.Posix
  >] {
    try configuration.addresses.map { try Self.makeClient(configuration, address: $0) }
  }

  private static func makeClient(_ configuration: IstioCAConfiguration, address: CAAddress) throws -> GRPCClient<
    HTTP2ClientTransport.Posix
  > {
    let security: HTTP2ClientTransport.Posix.TransportSecurity
    if let roots = configuration.rootsFile {
      guard FileManager.default.isReadableFile(atPath: roots) else {
        throw AgentError(.caFiles, "cannot read the CA roots file \(roots) (ca-root)")
      }
      security = .tls { tls in
        tls.trustRoots = .certificates([.file(path: roots, format: .pem)])
      }
    } else {
      security = .plaintext
    }
    var registry = NameResolverRegistry.defaults
    registry.registerFactory(CATargetResolver())
    var transportConfiguration = HTTP2ClientTransport.Posix.Config.defaults
    // Reconnect within about a second of the CA coming back: a renewal waits on this connection
    // (for at most `reconnectWindow`), so the window must hold several reconnect attempts.
    transportConfiguration.backoff = .init(initial: .milliseconds(250), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
    let transport = try HTTP2ClientTransport.Posix(
      target: CATarget(host: address.host, port: address.port, serverName: configuration.serverName),
      transportSecurity: security,
      config: transportConfiguration,
      resolverRegistry: registry
    )
    return GRPCClient(transport: transport)
  }

  package var description: String {
    "IstioCAClient(\(self.configuration.addresses.map(\.description).joined(separator: ",")))"
  }

  /// Keeps the connection to the CA until graceful shutdown; a replaced connection finishes the
  /// requests it carries and closes.
  package func run() async throws {
    try await withGracefulShutdownHandler {
      try await withThrowingDiscardingTaskGroup { group in
        for client in self.clients.withLock({ $0 }) {
          group.addTask { try await client.runConnections() }
        }
        for await next in self.replaced {
          group.addTask { try await next.runConnections() }
        }
      }
    } onGracefulShutdown: {
      self.replacements.finish()
      for client in self.clients.withLock({ $0 }) { client.beginGracefulShutdown() }
    }
  }

  /// Connects to the CA again with the roots the `ca-root` file holds now; requests in flight
  /// finish on the old connection. The certificates served are not touched.
  package func reloadRoots() throws {
    let next = try Self.makeClients(self.configuration)
    let old = self.clients.withLock { current in
      defer { current = next }
      return current
    }
    for client in next { self.replacements.yield(client) }
    for client in old { client.beginGracefulShutdown() }
    self.logger.info(
      "reconnecting to the CA with the new roots", metadata: ["file": "\(self.configuration.rootsFile ?? "")"])
  }

  package func certify(
    identity: SPIFFEID,
    privateKey: WorkloadPrivateKey,
    ttl: Duration,
    now: Date,
    credential: CACredential
  ) async throws(CertificateAuthorityError) -> IssuedSVID {
    var request = Istio_V1_Auth_IstioCertificateRequest()
    do {
      request.csr = try WorkloadCSR.make(identity: identity, privateKey: privateKey).serializeAsPEM().pemString
    } catch {
      throw CertificateAuthorityError(.signingFailed, "building the CSR failed", cause: error)
    }
    request.validityDuration = ttl.components.seconds
    if credential == .impersonation {
      request.metadata.fields[Self.impersonatedIdentityKey] = Google_Protobuf_Value(stringValue: identity.description)
    }
    let metadata = try self.metadata(credential: credential)
    let response = try await self.callInTurn(request, metadata: metadata)
    do {
      return try await response.validatedSVID(identity: identity, privateKey: privateKey, now: Date())
    } catch {
      self.logger.error(
        "rejected the CA's response",
        metadata: ["identity": "\(identity)", "reason": "\(error.message)"]
      )
      throw error
    }
  }

  /// Istio's request metadata key naming the workload a trusted node agent asks for.
  package static let impersonatedIdentityKey = "ImpersonatedIdentity"

  func metadata(credential: CACredential) throws(CertificateAuthorityError) -> Metadata {
    var metadata = Metadata()
    metadata.addString(self.configuration.clusterID, forKey: "clusterid")
    for (key, value) in self.configuration.extraHeaders.sorted(by: { $0.key < $1.key }) {
      metadata.addString(value, forKey: key.lowercased())
    }
    if case .forwardedToken(let token) = credential {
      metadata.addString("Bearer \(token)", forKey: "authorization")
    } else if let path = self.configuration.tokenFile {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw CertificateAuthorityError(.refused, "cannot read the token file \(path)")
      }
      let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      metadata.addString("Bearer \(token)", forKey: "authorization")
    }
    return metadata
  }

  /// Three times the connection's longest reconnect backoff.
  static let reconnectWindow = Duration.seconds(3)

  package static func classify(_ error: RPCError, address: String, retryAfter: Duration? = nil)
    -> CertificateAuthorityError
  {
    switch error.code {
    case .unauthenticated, .permissionDenied:
      return CertificateAuthorityError(
        .refused,
        "the CA at \(address) refused the request (\(error.code)): \(error.message) — check the token, its audience and the CA's authorization",
        cause: error
      )
    case .unavailable, .deadlineExceeded, .resourceExhausted, .internalError, .aborted, .cancelled, .unknown:
      return CertificateAuthorityError(
        .unavailable, "the CA at \(address) failed (\(error.code)): \(error.message)", cause: error,
        retryAfter: retryAfter)
    default:
      return CertificateAuthorityError(
        .refused, "the CA at \(address) answered \(error.code): \(error.message)", cause: error)
    }
  }
}

/// A host and port to dial, with an optional server name that replaces the host in SNI and the
/// certificate check (Istio's `ISTIOD_SAN`).
struct CATarget: ResolvableTarget {
  let host: String
  let port: Int
  let serverName: String?
}

struct CATargetResolver: NameResolverFactory {
  typealias Target = CATarget

  func resolver(for target: CATarget) -> NameResolver {
    let dns = NameResolvers.DNS().resolver(for: .dns(host: target.host, port: target.port))
    // Without an override, the transport derives SNI from the address (none for an IP).
    return NameResolver(names: dns.names, updateMode: dns.updateMode, authority: target.serverName)
  }
}
