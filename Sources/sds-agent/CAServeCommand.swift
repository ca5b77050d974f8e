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
    discussion: """
      A root generated in --state-dir can be rotated in stages with `sds-agent ca rotate-root --admin ADDRESS`: \
      the new root joins every answer's bundle at once; after --root-overlap it signs, and the TLS serving \
      certificate is minted anew from it; one --max-ttl later the old root leaves the bundle. The overlap is \
      at least --max-ttl, since agents learn the new root only when they renew or when their --ca-root changes. \
      Every option can also be set as SDS_AGENT_CA_SERVE_<KEY> (SDS_AGENT_CA_SERVE_MAX_TTL=1h); the command line wins.
      """
  )

  @Option(help: help(CAServeSettings.listen))
  var listen: String?

  @Option(name: .customLong("state-dir"), help: help(CAServeSettings.stateDirectory))
  var stateDir: String?

  @Option(name: .customLong("jwt-keys"), help: help(CAServeSettings.jwtKeys))
  var jwtKeys: String?

  @Option(name: .customLong("jwt-issuer"), help: help(CAServeSettings.jwtIssuer))
  var jwtIssuers: [String] = []

  @Option(name: .customLong("trust-domain"), help: help(AgentSettings.trustDomain))
  var trustDomain: String?

  @Option(name: .customLong("max-ttl"), help: help(CAServeSettings.maximumTTL))
  var maxTTL: String?

  @Option(name: .customLong("tls-san"), help: help(CAServeSettings.tlsSAN))
  var tlsSANs: [String] = []

  @Option(name: .customLong("trusted-node-identity"), help: help(CAServeSettings.trustedNodeIdentity))
  var trustedNodeIdentities: [String] = []

  @Option(name: .customLong("ca-cert"), help: help(AgentSettings.caCertificate))
  var caCert: String?

  @Option(name: .customLong("ca-key"), help: help(AgentSettings.caKey))
  var caKey: String?

  @Option(name: .customLong("ca-chain"), help: help(AgentSettings.caChain))
  var caChain: String?

  @Option(name: .customLong("log-level"), help: help(AgentSettings.logLevel))
  var logLevel: String?

  @Option(name: .customLong("admin"), help: help(CAServeSettings.admin))
  var admin: String?

  @Option(name: .customLong("root-overlap"), help: help(CAServeSettings.rootOverlap))
  var rootOverlap: String?

  @Option(name: .customLong("crl-validity"), help: help(AgentSettings.crlValidity))
  var crlValidity: String?

  @Option(name: .customLong("crl-url"), help: help(CAServeSettings.crlURL))
  var crlURL: String?

  @Option(name: .customLong("crl-listen"), help: help(CAServeSettings.crlListen))
  var crlListen: String?

  // Arrays, so that one given twice is refused rather than the first silently dropped.
  @Option(name: .customLong("datastore"), help: help(CAServeSettings.datastore))
  var datastore: [String] = []

  @Option(name: .customLong("datastore-password-file"), help: help(CAServeSettings.datastorePasswordFile))
  var datastorePasswordFile: [String] = []

  @Option(name: .customLong("key-encryption-key"), help: help(CAServeSettings.keyEncryptionKey))
  var keyEncryptionKey: [String] = []

  @Option(name: .customLong("replica-name"), help: help(CAServeSettings.replicaName))
  var replicaName: [String] = []

  /// The options given, over `SDS_AGENT_CA_SERVE_<KEY>`, read through `CAServeSettings`' declarations.
  var settings: SettingsSource {
    var flags: [String: [String]] = [:]
    for (key, value) in [
      (CAServeSettings.listen.key, self.listen), (CAServeSettings.stateDirectory.key, self.stateDir),
      (CAServeSettings.jwtKeys.key, self.jwtKeys), (AgentSettings.trustDomain.key, self.trustDomain),
      (CAServeSettings.maximumTTL.key, self.maxTTL), (AgentSettings.caCertificate.key, self.caCert),
      (AgentSettings.caKey.key, self.caKey), (AgentSettings.caChain.key, self.caChain),
      (AgentSettings.logLevel.key, self.logLevel), (CAServeSettings.admin.key, self.admin),
      (CAServeSettings.rootOverlap.key, self.rootOverlap), (AgentSettings.crlValidity.key, self.crlValidity),
      (CAServeSettings.crlURL.key, self.crlURL), (CAServeSettings.crlListen.key, self.crlListen),
    ] {
      flags[key] = value.map { [$0] }
    }
    for (key, values) in self.datastoreFlags where !values.isEmpty {
      flags[key] = values
    }
    for (key, values) in [
      (CAServeSettings.jwtIssuer.key, self.jwtIssuers), (CAServeSettings.tlsSAN.key, self.tlsSANs),
      (CAServeSettings.trustedNodeIdentity.key, self.trustedNodeIdentities),
    ] where !values.isEmpty {
      flags[key] = values
    }
    return SettingsSource(
      flags: flags, environment: ProcessInfo.processInfo.environment,
      environmentPrefix: CAServeSettings.environmentPrefix)
  }

  func run() async throws {
    let s = CAServeSettings.self
    let level: Logger.Level
    let configuration: CAServerConfiguration
    do {
      try self.refuseRepeatedDatastoreFlags()
      let settings = self.settings
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
      serve.datastore = try Self.datastore(settings)
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
  /// One of them given twice is an error: neither value is dropped silently.
  func refuseRepeatedDatastoreFlags() throws(ConfigurationError) {
    for (key, values) in self.datastoreFlags where values.count > 1 {
      throw ConfigurationError(
        key: key, value: values.map(DatastoreAddress.redacting).joined(separator: ", "),
        allowed: "one value (--\(key) was given \(values.count) times)"
      )
    }
  }

  /// The datastore options as given, each possibly repeated.
  var datastoreFlags: [(String, [String])] {
    [
      (CAServeSettings.datastore.key, self.datastore),
      (CAServeSettings.datastorePasswordFile.key, self.datastorePasswordFile),
      (CAServeSettings.keyEncryptionKey.key, self.keyEncryptionKey),
      (CAServeSettings.replicaName.key, self.replicaName),
    ]
  }

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

/// A setting's help, with its default and its value's name, as `run --help` gives them.
private func help<Value>(_ setting: Setting<Value>) -> ArgumentHelp {
  ArgumentHelp(
    setting.help + (setting.declaration.shownDefault.map { " (default \($0))" } ?? ""),
    valueName: setting.declaration.valueName.lowercased())
}
