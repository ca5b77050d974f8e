import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgent
import SDSAgentCore
import ServiceLifecycle
import UnixSignals
import X509

/// What `sds-agent ca serve` needs.
package struct CAServerConfiguration: Sendable {
  package var host: String
  package var port: Int
  package var stateDirectory: String
  package var caSource: AgentConfiguration.CASource
  package var trustDomain: String
  package var jwtKeysFile: String
  package var jwtIssuers: [String]
  package var maximumTTL: Duration
  /// Extra names for the TLS serving certificate, besides localhost, 127.0.0.1 and ::1.
  package var tlsNames: [String]
  /// Node agents that may ask for their workloads' certificates (`ImpersonatedIdentity`).
  package var trustedNodeIdentities: [SPIFFEID]
  /// The admin endpoint (`/healthz`, `/debug/trust`, `POST /ca/rotate-root`), if any.
  package var admin: AgentConfiguration.AdminAddress?
  /// How long both roots are trusted before the new one signs; at least `maximumTTL`.
  package var rootOverlap: Duration
  /// How long its revocation lists are valid.
  package var crlValidity: Duration
  /// Written into every leaf it signs as the CRL distribution point (`--crl-url`).
  package var crlURL: CRLDistributionPoint?
  /// Where it serves its CRL over plain HTTP, at `crlURL`'s path (`--crl-listen`).
  package var crlListen: (host: String, port: Int)?
  /// Certificate requests in flight at most (`--max-inflight`; 0: no cap).
  package var maximumInFlight = CAServeSettings.defaultMaximumInFlight
  /// Signings a second per caller (`--caller-rate`; 0: no cap).
  package var callerRate: Double = 0
  /// The PostgreSQL datastore replicas share (`--datastore`); `nil`: the state directory.
  package var datastore: DatastoreConfiguration?
  /// The lifetime of the JWT-SVIDs it signs (`--jwt-svid-ttl`); `nil`: not set (`effectiveJWTSVIDTTL`).
  package var jwtSVIDTTL: Duration? = nil

  /// The overlap when none is set: an hour, or one `maximumTTL` if that is longer.
  package static func defaultRootOverlap(maximumTTL: Duration) -> Duration {
    max(.seconds(3600), maximumTTL)
  }

  package init(
    host: String,
    port: Int,
    stateDirectory: String,
    caSource: AgentConfiguration.CASource = .generated,
    trustDomain: String = "cluster.local",
    jwtKeysFile: String,
    jwtIssuers: [String] = JWTCallerAuthenticator.defaultIssuers,
    maximumTTL: Duration = .seconds(86400),
    tlsNames: [String] = [],
    trustedNodeIdentities: [SPIFFEID] = [],
    admin: AgentConfiguration.AdminAddress? = nil,
    rootOverlap: Duration? = nil,
    crlValidity: Duration = .seconds(4 * 3600)
  ) {
    self.trustedNodeIdentities = trustedNodeIdentities
    self.host = host
    self.port = port
    self.stateDirectory = stateDirectory
    self.caSource = caSource
    self.trustDomain = trustDomain
    self.jwtKeysFile = jwtKeysFile
    self.jwtIssuers = jwtIssuers
    self.maximumTTL = maximumTTL
    self.tlsNames = tlsNames
    self.admin = admin
    self.rootOverlap = rootOverlap ?? Self.defaultRootOverlap(maximumTTL: maximumTTL)
    self.crlValidity = crlValidity
  }
}

/// `IstioCertificateService` over TLS on TCP, signing with the same CA machinery as the embedded
/// CA. Its TLS certificate is minted by that CA at start and kept in memory, so clients trust
/// the CA's root (`<state-dir>/ca-cert.pem`) with `--ca-root`. A root it generated can be
/// rotated in stages like the agent's (`POST /ca/rotate-root` on its admin endpoint): its answers
/// carry every root of the moment, and at the switch its TLS certificate is minted anew.
package struct CAServer: Sendable {
  /// The CA: the root that signs and, during a rotation, the other one.
  package let ca: EmbeddedCA
  /// Drives rotations of a root the server generated; `nil` with the operator's files.
  package let rotation: RootRotationSupervisor<ContinuousClock>?
  /// Keeps its revocation lists signed, and revokes.
  let revocation: RevocationService<ContinuousClock>
  let servingCertificate: ServingCertificate
  let server: GRPCServer<HTTP2ServerTransport.Posix>
  let admin: AdminServer?
  /// Serves its CRL at the distribution point, with `--crl-listen`.
  package let crlServer: CRLDistributionServer?
  let logger: Logger
  /// Follows the shared CA's changes, with `--datastore` and a rotatable root.
  package var datastoreFollower: DatastoreFollower<ContinuousClock>? = nil
  /// Writes what it signs to the issuance ledger, with `--datastore`.
  var ledger: IssuanceLedgerService? = nil
  /// The JWT signing keys of `JWTSVIDService`.
  package var jwtKeys: JWTKeyRing? = nil

  /// The root that signs now.
  package var material: CAMaterial { self.ca.roots.signing }

  /// The chain the TLS listener presents to new connections, the leaf first.
  package var servingChain: [Certificate] { self.servingCertificate.chain }

  /// Returns once the admin endpoint accepts connections (never, without one).
  package func waitForAdminEndpoint() async {
    await self.admin?.listening.wait()
  }

  package static func build(configuration: CAServerConfiguration, logger: Logger) async throws -> CAServer {
    if configuration.caSource == .generated {
      let minimum = MinimumOverlap.renewal(maximumTTL: configuration.maximumTTL)
      guard minimum.refusal(of: configuration.rootOverlap) == nil else {
        throw ConfigurationError(
          key: "root-overlap", value: DurationParser.format(configuration.rootOverlap), allowed: minimum.requirement)
      }
    }
    try Self.checkJWTSVIDTTL(configuration)
    let crlListener = try Self.crlListener(configuration)
    let (roots, resuming, store): (EmbeddedCA.Roots, RootRotation?, (any RootRotationStore)?)
    var shared: (store: CADatastore, state: SharedCAState)?
    if let datastore = configuration.datastore {
      let loaded = try await Self.sharedRoots(datastore, configuration: configuration, logger: logger)
      shared = loaded
      (roots, resuming) = (loaded.state.roots, try loaded.state.rotation())
      let rotatable = configuration.caSource == .generated && !loaded.state.imported
      store = rotatable ? DatastoreRotationStore(datastore: loaded.store) : nil
    } else {
      (roots, resuming, store) = try RootRotationFiles.roots(
        of: configuration.caSource, stateDirectory: configuration.stateDirectory, trustDomain: configuration.trustDomain
      )
    }
    // Every leaf it signs is recorded before it is answered, so it can be revoked.
    let record: any RevocationRecord =
      if let shared {
        try await DatastoreRevocationRecord.load(shared.store, validity: configuration.crlValidity)
      } else {
        try RevocationStore.open(stateDirectory: configuration.stateDirectory, validity: configuration.crlValidity)
      }
    let ca = EmbeddedCA(roots, record: record, crlDistributionPoint: configuration.crlURL)
    let revocationHost = CAServerRevocationHost()
    let revocation = RevocationService(
      ca: ca, record: record, host: revocationHost, clock: ContinuousClock(), now: { Date() }, logger: logger)
    revocation.publish()
    let authenticator = try await JWTCallerAuthenticator.load(
      keysFile: configuration.jwtKeysFile,
      issuers: configuration.jwtIssuers,
      trustDomain: configuration.trustDomain
    )
    let servingCertificate = try ServingCertificate(
      signedBy: roots.signing,
      names: ["localhost", "127.0.0.1", "::1", configuration.host] + configuration.tlsNames
    )
    let address: GRPCNIOTransportCore.SocketAddress =
      configuration.host.contains(":")
      ? .ipv6(host: configuration.host, port: configuration.port)
      : .ipv4(host: configuration.host, port: configuration.port)
    let transport = HTTP2ServerTransport.Posix(
      address: address,
      transportSecurity: try .tls(certificateReloader: servingCertificate)
    )
    let admission = Self.admission(configuration)
    let ledger = shared.map { Self.ledger($0.store, logger: logger) }
    let signer = IstioCertificateSigner(
      ca: ca,
      authenticator: authenticator,
      maximumTTL: configuration.maximumTTL,
      trustedNodeIdentities: Set(configuration.trustedNodeIdentities),
      logger: logger,
      admission: admission,
      ledger: ledger?.ledger,
      replica: shared?.store.replicaName ?? ""
    )
    let jwtKeys = try Self.jwtKeys(configuration, ca: ca, resuming: resuming, logger: logger)
    let rotation = store.map { store in
      Self.rotation(
        ca: ca,
        host: CAServerRootRotationHost(
          ca: ca, servingCertificate: servingCertificate, maximumTTL: configuration.maximumTTL),
        store: store, resuming: resuming, configuration: configuration, logger: logger, follower: jwtKeys.ring)
    }
    let admin = configuration.admin.map { address in
      AdminServer(
        address: address,
        routes: AdmissionMetricsRoutes(
          routes: CAServerAdminRoutes(
            trust: TrustRoutes(
              rotation: rotation, ca: ca, trustDomain: configuration.trustDomain,
              notRotatable: rotation == nil ? Self.operatorFilesNotRotatable : nil,
              revocationLists: { revocationHost.servedRevocationLists }),
            revocation: RevocationRoutes(service: revocation, host: revocationHost, notRevocable: nil),
            roots: { ca.trustBundle }),
          admission: admission),
        listening: Milestone(), logger: logger)
    }
    var follower: DatastoreFollower<ContinuousClock>?
    if let shared {
      follower = DatastoreFollower(
        datastore: shared.store, supervisor: rotation,
        revocations: (record as? DatastoreRevocationRecord).map { ($0, revocation) }, ca: ca,
        stateDirectory: configuration.stateDirectory, clock: ContinuousClock(), logger: logger,
        jwtKeys: jwtKeys.ring)
    }
    return CAServer(
      ca: ca, rotation: rotation, revocation: revocation, servingCertificate: servingCertificate,
      server: GRPCServer(
        transport: transport,
        services: [
          signer,
          JWTSVIDSigningService(
            keys: jwtKeys, authenticator: authenticator,
            trustedNodeIdentities: Set(configuration.trustedNodeIdentities), admission: admission, logger: logger),
        ]), admin: admin,
      crlServer: Self.crlServer(crlListener, ca: ca, host: revocationHost, logger: logger), logger: logger,
      datastoreFollower: follower, ledger: ledger, jwtKeys: jwtKeys.ring)
  }

  /// Why `rotate-root` is refused with the operator's CA files.
  static let operatorFilesNotRotatable =
    "the CA comes from the operator's files (--ca-cert, --ca-key); ca serve rotates only a root it generated "
    + "in --state-dir: to change roots, replace the files (the new root first added to the agents' --ca-root) "
    + "and restart"

  private static func rotation(
    ca: EmbeddedCA, host: CAServerRootRotationHost, store: any RootRotationStore, resuming: RootRotation?,
    configuration: CAServerConfiguration, logger: Logger, follower: (any RootRotationFollower)?
  ) -> RootRotationSupervisor<ContinuousClock> {
    if let resuming {
      logger.notice(
        "root rotation: resuming",
        metadata: [
          "phase": "\(resuming.phase.rawValue)", "new_root": "\(resuming.nextRootSerial)",
          "next_step_at": "\(resuming.nextDeadline(now: Date(), acknowledged: true).formatted(.iso8601))",
        ])
    }
    return RootRotationSupervisor(
      ca: ca, host: host, store: store, resuming: resuming, overlap: configuration.rootOverlap,
      makeRoot: { [trustDomain = configuration.trustDomain] now in
        // A root of its own name, so that no verifier confuses it with the root it replaces.
        try CAMaterial.generateRoot(
          trustDomain: trustDomain, now: now, commonName: "sds-agent local CA \(now.formatted(.iso8601))")
      },
      clock: ContinuousClock(), now: { Date() }, logger: logger, follower: follower)
  }

  /// Serves until SIGTERM/SIGINT; calls `onListening` with the bound address once it accepts.
  package func run(onListening: @escaping @Sendable (String) -> Void) async throws {
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
      .essential(GRPCServerService(name: "istio-ca", server: self.server, onStop: {}))
    ]
    if let rotation { services.append(.essential(rotation)) }
    services.append(.essential(self.revocation))
    if let admin { services.append(.auxiliary(admin)) }
    if let crlServer { services.append(.essential(crlServer)) }
    if let datastoreFollower { services.append(.essential(datastoreFollower)) }
    if let ledger { services.append(.essential(ledger)) }
    var configuration = ServiceGroupConfiguration(
      services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger)
    configuration.maximumGracefulShutdownDuration = Agent.shutdownLimit
    let group = ServiceGroup(configuration: configuration)
    try await withThrowingDiscardingTaskGroup { tasks in
      tasks.addTask { try await group.run() }
      tasks.addTask {
        if let address = try await self.server.listeningAddress {
          if let ipv4 = address.ipv4 {
            onListening("\(ipv4.host):\(ipv4.port)")
          } else if let ipv6 = address.ipv6 {
            onListening("[\(ipv6.host)]:\(ipv6.port)")
          } else {
            onListening("\(address)")
          }
        }
      }
    }
  }
}
