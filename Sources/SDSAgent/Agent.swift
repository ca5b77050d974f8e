import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import ServiceLifecycle
import UnixSignals

/// The assembled agent: the one place where configuration becomes running services. The
/// executable and the integration tests both build the agent here.
public struct Agent: Sendable {
  public let configuration: AgentConfiguration
  public let cache: SecretCache
  public let counters: AgentCounters
  public let listener: UnixSocketListener
  /// In dependency order: the rotator keeps the cache fresh, the server serves it.
  public let services: [any Service]
  public let logger: Logger
  private let rotator: SVIDRotator<ContinuousClock>

  /// Issues a new SVID now and pushes it to every open stream.
  public func rotate() async throws {
    try await self.rotator.rotate()
  }

  /// Loads the CA, issues the first SVID and binds the socket. When this returns, the socket
  /// accepts connections and the first certificate is in the cache.
  public static func build(configuration: AgentConfiguration, logger: Logger) async throws -> Agent {
    let authority: any CertificateAuthority
    if let istioCA = configuration.istioCA {
      authority = IstioCAClient(configuration: istioCA, logger: logger)
      logger.info(
        "fetching certificates from an Istio-compatible CA", metadata: ["address": "\(istioCA.host):\(istioCA.port)"])
    } else {
      let material = try CAStore.load(
        configuration.caSource,
        stateDirectory: configuration.stateDirectory,
        trustDomain: configuration.trustDomain
      )
      logger.info(
        "loaded CA",
        metadata: [
          "subject": "\(material.certificate.subject)",
          "not_after": "\(material.certificate.notValidAfter.formatted(.iso8601))",
          "source": "\(configuration.caSource == .generated ? "state-dir" : "operator-files")",
        ]
      )
      authority = LocalCA(material: material)
    }
    let cache = SecretCache()
    let counters = AgentCounters()
    let rotator = SVIDRotator(
      configuration: .init(
        identity: configuration.identity,
        keyType: configuration.keyType,
        ttl: configuration.certificateTTL,
        schedule: configuration.rotation
      ),
      authority: authority,
      cache: cache,
      counters: counters,
      clock: ContinuousClock(),
      now: { Date() },
      logger: logger
    )
    do {
      try await rotator.rotate()
    } catch {
      // A remote CA may be down at boot: serve as soon as it answers; the rotator retries.
      guard configuration.istioCA != nil else { throw error }
      logger.error("no certificate yet; will keep asking the CA", metadata: ["error": "\(error)"])
    }

    let listener = try UnixSocketListener.bind(path: configuration.socketPath, mode: configuration.socketMode)
    let server = GRPCServer(
      transport: HTTP2ServerTransport.Posix(
        listeningSocketDescriptor: Int(listener.descriptor),
        transportSecurity: .plaintext
      ),
      services: [SecretDiscoveryService(cache: cache, counters: counters, logger: logger)]
    )
    let serverService = GRPCServerService(
      name: "sds \(configuration.socketPath)", server: server, onStop: { listener.removeSocketFile() })
    return Agent(
      configuration: configuration,
      cache: cache,
      counters: counters,
      listener: listener,
      services: [rotator, serverService],
      logger: logger,
      rotator: rotator
    )
  }

  /// The service group that runs every service, shutting down gracefully on these signals.
  public func makeServiceGroup(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
    ServiceGroup(
      configuration: .init(
        services: self.services.map { .init(service: $0) },
        gracefulShutdownSignals: gracefulShutdownSignals,
        logger: self.logger
      )
    )
  }

  /// Runs every service until SIGTERM or SIGINT, then shuts down gracefully.
  public func run() async throws {
    try await self.makeServiceGroup().run()
  }
}
