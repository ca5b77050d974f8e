import ArgumentParser
import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore

struct CAServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Serve istio.v1.auth.IstioCertificateService over TLS, authenticating callers by service-account JWTs.",
    usage: "sds-agent ca serve --listen HOST:PORT --state-dir DIR --jwt-keys FILE [--<key> <value>] ...",
    discussion: """
      A root generated in --state-dir can be rotated in stages with `sds-agent ca rotate-root --admin ADDRESS`: \
      the new root joins every answer's bundle at once; after --root-overlap it signs, and the TLS serving \
      certificate is minted anew from it; one --max-ttl later the old root leaves the bundle. The overlap is \
      at least --max-ttl, since agents learn the new root only when they renew or when their --ca-root changes. \
      Every option can also be set as SDS_AGENT_CA_SERVE_<KEY> (SDS_AGENT_CA_SERVE_MAX_TTL=1h); the command line wins.

      \(CAServeSettings.help())
      """
  )

  /// Read against `CAServeSettings.all`, not by ArgumentParser: the declarations say which
  /// options are repeatable, and a single-value option given twice is refused, not overridden.
  @Argument(parsing: .allUnrecognized, help: .hidden)
  var arguments: [String] = []

  /// The options given, over `SDS_AGENT_CA_SERVE_<KEY>`, read through `CAServeSettings`' declarations.
  func settings() throws(ConfigurationError) -> SettingsSource {
    var environment = ProcessInfo.processInfo.environment
    // The datastore's URL is also read as SDS_AGENT_CA_DATASTORE, the name fleets know it by.
    if environment["SDS_AGENT_CA_SERVE_DATASTORE"] == nil, let url = environment["SDS_AGENT_CA_DATASTORE"] {
      environment["SDS_AGENT_CA_SERVE_DATASTORE"] = url
    }
    return SettingsSource(
      flags: try CommandLineSettings.parse(self.arguments, declarations: CAServeSettings.all),
      environment: environment,
      environmentPrefix: CAServeSettings.environmentPrefix)
  }

  func run() async throws {
    let s = CAServeSettings.self
    let level: Logger.Level
    let configuration: CAServerConfiguration
    do {
      let settings = try self.settings()
      level = try settings.require(AgentSettings.logLevel)
      let address = try settings.require(s.listen)
      let issuers = try settings.readAll(s.jwtIssuer)
      var serve = CAServerConfiguration(
        host: address.host,
        port: address.port,
        stateDirectory: try settings.require(s.stateDirectory),
        caSource: try ConfigurationLoader.caSource(settings),
        trustDomain: try settings.require(AgentSettings.trustDomain),
        jwtKeysFile: try settings.require(s.jwtKeys),
        jwtIssuers: issuers.isEmpty ? JWTCallerAuthenticator.defaultIssuers : issuers,
        maximumTTL: try settings.require(s.maximumTTL),
        tlsNames: try settings.readAll(s.tlsSAN),
        trustedNodeIdentities: try settings.readAll(s.trustedNodeIdentity),
        admin: try settings.read(s.admin),
        rootOverlap: try settings.read(s.rootOverlap),
        crlValidity: try settings.require(AgentSettings.crlValidity)
      )
      serve.crlURL = try settings.read(s.crlURL)
      serve.crlListen = try settings.read(s.crlListen)
      serve.maximumInFlight = try settings.require(s.maximumInFlight)
      serve.callerRate = try settings.require(s.callerRate)
      serve.datastore = try Self.datastore(settings)
      // Unset, its default depends on --datastore and --max-ttl (`effectiveJWTSVIDTTL`).
      serve.jwtSVIDTTL = settings.value(s.jwtSVIDTTL.key) == nil ? nil : try settings.require(s.jwtSVIDTTL)
      configuration = serve
    } catch {
      throw ValidationError(error.description)
    }
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    var logger = Logger(label: "sds-agent-ca")
    logger.logLevel = level
    let server: CAServer
    do {
      server = try await CAServer.build(configuration: configuration, logger: logger)
    } catch let error as ConfigurationError {
      throw ValidationError(error.description)
    } catch {
      logger.critical("cannot start", metadata: ["error": "\(error)"])
      throw ExitCode(1)
    }
    try await server.run { address in
      FileHandle.standardOutput.write(Data("sds-agent ca: serving IstioCertificateService on \(address)\n".utf8))
    }
  }
}

extension CAServeCommand {
  /// `--datastore` and its companions; the key-encryption key is required with a datastore.
  static func datastore(_ settings: SettingsSource) throws(ConfigurationError) -> DatastoreConfiguration? {
    let s = CAServeSettings.self
    guard let url = try settings.read(s.datastore) else {
      for setting in [s.datastorePasswordFile, s.keyEncryptionKey, s.replicaName]
      where settings.value(setting.key) != nil {
        throw settings.invalid(setting.key, allowed: "nothing without --datastore")
      }
      return nil
    }
    guard let key = try settings.read(s.keyEncryptionKey) else {
      throw ConfigurationError(
        key: "key-encryption-key", value: "", allowed: "a file of 32 random bytes (0600), required with --datastore")
    }
    return DatastoreConfiguration(
      url: url, passwordFile: try settings.read(s.datastorePasswordFile), keyEncryptionKeyFile: key,
      replicaName: try settings.read(s.replicaName))
  }
}
