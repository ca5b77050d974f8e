import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SDSAgentCore
import ServiceLifecycle
import SwiftASN1
import UnixSignals
import X509

#if canImport(Glibc)
  import Glibc
#endif

/// What `sds-agent ca serve` needs.
public struct CAServerConfiguration: Sendable {
  public var host: String
  public var port: Int
  public var stateDirectory: String
  public var caSource: AgentConfiguration.CASource
  public var trustDomain: String
  public var jwtKeysFile: String
  public var jwtIssuers: [String]
  public var maximumTTL: Duration
  /// Extra names for the TLS serving certificate, besides localhost, 127.0.0.1 and ::1.
  public var tlsNames: [String]
  /// Node agents that may ask for their workloads' certificates (`ImpersonatedIdentity`).
  public var trustedNodeIdentities: [SPIFFEID]

  public init(
    host: String,
    port: Int,
    stateDirectory: String,
    caSource: AgentConfiguration.CASource = .generated,
    trustDomain: String = "cluster.local",
    jwtKeysFile: String,
    jwtIssuers: [String] = JWTCallerAuthenticator.defaultIssuers,
    maximumTTL: Duration = .seconds(86400),
    tlsNames: [String] = [],
    trustedNodeIdentities: [SPIFFEID] = []
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
  }
}

/// `IstioCertificateService` over TLS on TCP, signing with the same CA machinery as the embedded
/// CA. Its TLS certificate is minted by that CA at start and kept in memory, so clients trust
/// the CA's root (`<state-dir>/ca-cert.pem`) with `--ca-root`.
public struct CAServer: Sendable {
  public let material: CAMaterial
  let server: GRPCServer<HTTP2ServerTransport.Posix>
  let logger: Logger

  public static func build(configuration: CAServerConfiguration, logger: Logger) async throws -> CAServer {
    let material = try CAStore.load(
      configuration.caSource,
      stateDirectory: configuration.stateDirectory,
      trustDomain: configuration.trustDomain
    )
    let authenticator = try await JWTCallerAuthenticator.load(
      keysFile: configuration.jwtKeysFile,
      issuers: configuration.jwtIssuers,
      trustDomain: configuration.trustDomain
    )
    let (chain, key) = try Self.servingCertificate(
      material: material,
      names: ["localhost", "127.0.0.1", "::1", configuration.host] + configuration.tlsNames
    )
    let address: GRPCNIOTransportCore.SocketAddress =
      configuration.host.contains(":")
      ? .ipv6(host: configuration.host, port: configuration.port)
      : .ipv4(host: configuration.host, port: configuration.port)
    let transport = HTTP2ServerTransport.Posix(
      address: address,
      transportSecurity: .tls(
        certificateChain: try chain.map { .bytes(Array(try $0.pemString().utf8), format: .pem) },
        privateKey: .bytes(Array(try key.serializeAsPEM().pemString.utf8), format: .pem)
      )
    )
    let signer = IstioCertificateSigner(
      ca: LocalCA(material: material),
      authenticator: authenticator,
      maximumTTL: configuration.maximumTTL,
      trustedNodeIdentities: Set(configuration.trustedNodeIdentities),
      logger: logger
    )
    return CAServer(material: material, server: GRPCServer(transport: transport, services: [signer]), logger: logger)
  }

  /// Serves until SIGTERM/SIGINT; calls `onListening` with the bound address once it accepts.
  public func run(onListening: @escaping @Sendable (String) -> Void) async throws {
    let service = GRPCServerService(name: "istio-ca", server: self.server, onStop: {})
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger)
    )
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

  static func servingCertificate(
    material: CAMaterial,
    names: [String]
  ) throws -> ([Certificate], Certificate.PrivateKey) {
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    var generalNames: [GeneralName] = []
    for name in Set(names).sorted() where !name.isEmpty {
      if let bytes = Self.ipAddressBytes(name) {
        generalNames.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
      } else if name != "0.0.0.0", name != "::" {
        generalNames.append(.dnsName(name))
      }
    }
    let now = Date()
    let leaf = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: key.publicKey,
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: min(now.addingTimeInterval(365 * 86400), material.certificate.notValidAfter),
      issuer: material.certificate.subject,
      subject: try DistinguishedName { CommonName("sds-agent ca serve") },
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
        try ExtendedKeyUsage([.serverAuth])
        SubjectAlternativeNames(generalNames)
      },
      issuerPrivateKey: material.privateKey
    )
    return ([leaf] + material.chainAfterLeaf, key)
  }

  static func ipAddressBytes(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
      return withUnsafeBytes(of: &v4) { Array($0) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
      return withUnsafeBytes(of: &v6) { Array($0) }
    }
    return nil
  }
}
