import ArgumentParser
import Foundation
import Logging
import SDSAgent
import SDSAgentCore

struct RunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Serve SDS on a Unix socket (the default command). Every flag can also be set as SDS_AGENT_<NAME>."
  )

  @Option(
    help:
      "Unix socket to serve SDS on. Default: $RUNTIME_DIRECTORY/sds.sock under systemd, /run/sds-agent/sds.sock as root, else $XDG_RUNTIME_DIR/sds-agent/sds.sock or ./.sds-agent/sds.sock."
  )
  var socket: String?

  @Option(name: .customLong("socket-mode"), help: "Octal permission bits of the socket file (default 0660).")
  var socketMode: String?

  @Option(
    name: .customLong("state-dir"),
    help:
      "Directory for the generated CA (mode 0700). Default: $STATE_DIRECTORY, /var/lib/sds-agent as root, else ~/.local/state/sds-agent."
  )
  var stateDir: String?

  @Option(name: .customLong("trust-domain"), help: "SPIFFE trust domain (default cluster.local).")
  var trustDomain: String?

  @Option(help: "SPIFFE ID of the workload (default spiffe://<trust-domain>/ns/default/sa/default).")
  var identity: String?

  @Option(name: .customLong("cert-ttl"), help: "Lifetime of workload certificates, e.g. 30s, 1h, 24h (default 24h).")
  var certTTL: String?

  @Option(name: .customLong("key-type"), help: "Workload key type: ecdsa-p256 (default) or rsa-2048.")
  var keyType: String?

  @Option(name: .customLong("rotation-ratio"), help: "Renew at this fraction of the lifetime (default 0.5).")
  var rotationRatio: String?

  @Option(
    name: .customLong("rotation-jitter"),
    help: "Move the renewal by up to this fraction of the lifetime either way (default 0.1).")
  var rotationJitter: String?

  @Option(name: .customLong("ca-cert"), help: "PEM file with the operator's signing CA certificate (with --ca-key).")
  var caCert: String?

  @Option(name: .customLong("ca-key"), help: "PEM file with the signing CA's private key (mode 0600).")
  var caKey: String?

  @Option(name: .customLong("ca-chain"), help: "PEM file with the intermediates and the root above --ca-cert.")
  var caChain: String?

  @Option(help: "Where certificates come from: local (the embedded CA, default) or istio (an Istio-compatible CA).")
  var ca: String?

  @Option(
    name: .customLong("ca-address"), help: "HOST:PORT of the Istio-compatible CA, e.g. istiod.istio-system.svc:15012.")
  var caAddress: String?

  @Option(name: .customLong("ca-root"), help: "PEM roots that verify the CA's TLS certificate.")
  var caRoot: String?

  @Option(
    name: .customLong("ca-server-name"),
    help: "Name expected in the CA's TLS certificate and sent as SNI (Istio's ISTIOD_SAN).")
  var caServerName: String?

  @Flag(name: .customLong("ca-insecure-plaintext"), help: "Talk to a CA on port 15010 without TLS.")
  var caInsecurePlaintext = false

  @Option(
    name: .customLong("token-file"),
    help:
      "JWT sent as the bearer token, re-read on every request (default /var/run/secrets/tokens/istio-token when present)."
  )
  var tokenFile: String?

  @Option(name: .customLong("cluster-id"), help: "Sent to the CA as the ClusterID header (default Kubernetes).")
  var clusterID: String?

  @Option(
    name: .customLong("ca-header"), help: "Extra header KEY=VALUE for the CA (repeatable), like Istio's CA_HEADER_*.")
  var caHeaders: [String] = []

  @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error or critical.")
  var logLevel: String?

  func run() async throws {
    let configuration: AgentConfiguration
    do {
      configuration = try self.makeConfiguration()
    } catch {
      throw ValidationError(error.description)
    }
    var logger = Logger(label: "sds-agent")
    logger.logLevel = configuration.logLevel
    let level = configuration.logLevel
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }

    let agent: Agent
    do {
      agent = try await Agent.build(configuration: configuration, logger: logger)
    } catch let error as AgentError {
      logger.critical("cannot start", metadata: ["error": "\(error)"])
      throw ExitCode(1)
    }
    let banner = """
      sds-agent: serving SDS on \(configuration.socketPath) (identity \(configuration.identity))
      --- envoy bootstrap snippet ---
      \(EnvoyBootstrapSnippet.yaml(socketPath: configuration.socketPath))--- end ---

      """
    // Unbuffered, so a supervisor or test reading a pipe sees it at once.
    FileHandle.standardOutput.write(Data(banner.utf8))
    logger.info(
      "serving SDS",
      metadata: [
        "socket": "\(configuration.socketPath)", "identity": "\(configuration.identity)",
        "cert_ttl": "\(DurationParser.format(configuration.certificateTTL))",
      ]
    )
    try await agent.run()
    logger.info("stopped")
  }

  private func makeConfiguration() throws(ConfigurationError) -> AgentConfiguration {
    let defaults = DefaultPaths.resolve()
    let trustDomain = EnvironmentOption.value(self.trustDomain, name: "trust-domain") ?? "cluster.local"
    let identity = try EnvironmentOption.parse(
      self.identity, name: "identity", allowed: "a SPIFFE ID such as spiffe://cluster.local/ns/default/sa/default"
    ) {
      try? SPIFFEID(parsing: $0)
    }
    let ttl = try EnvironmentOption.parse(
      self.certTTL, name: "cert-ttl", allowed: "a duration such as 30s, 1h or 24h", DurationParser.parse)
    let keyType = try EnvironmentOption.parse(
      self.keyType, name: "key-type", allowed: "ecdsa-p256 or rsa-2048", WorkloadKeyType.init(rawValue:))
    let mode = try EnvironmentOption.parse(
      self.socketMode, name: "socket-mode", allowed: "octal permission bits such as 0660"
    ) {
      UInt32($0, radix: 8).flatMap { $0 <= 0o777 ? $0 : nil }
    }
    let ratio =
      try EnvironmentOption.parse(self.rotationRatio, name: "rotation-ratio", allowed: "a number between 0.1 and 0.9") {
        Double($0).flatMap { (0.1...0.9).contains($0) ? $0 : nil }
      } ?? 0.5
    let jitter =
      try EnvironmentOption.parse(
        self.rotationJitter, name: "rotation-jitter", allowed: "a number from 0 to less than min(ratio, 1 - ratio)"
      ) {
        Double($0).flatMap { $0 >= 0 && $0 < min(ratio, 1 - ratio) ? $0 : nil }
      } ?? min(0.1, min(ratio, 1 - ratio) / 2)
    let level = try EnvironmentOption.parse(
      self.logLevel, name: "log-level", allowed: "trace, debug, info, notice, warning, error or critical",
      Logger.Level.init(rawValue:))

    let caSource: AgentConfiguration.CASource
    switch (EnvironmentOption.value(self.caCert, name: "ca-cert"), EnvironmentOption.value(self.caKey, name: "ca-key"))
    {
    case (nil, nil):
      if let chain = EnvironmentOption.value(self.caChain, name: "ca-chain") {
        throw ConfigurationError(key: "ca-chain", value: chain, allowed: "only together with --ca-cert and --ca-key")
      }
      caSource = .generated
    case (let certificate?, let key?):
      caSource = .files(
        certificate: certificate, key: key, chain: EnvironmentOption.value(self.caChain, name: "ca-chain"))
    case (let certificate?, nil):
      throw ConfigurationError(key: "ca-key", value: "", allowed: "a key file, because --ca-cert \(certificate) is set")
    case (nil, let key?):
      throw ConfigurationError(key: "ca-cert", value: "", allowed: "a certificate file, because --ca-key \(key) is set")
    }

    let istioCA = try self.istioCAConfiguration()
    var identityOrToken = identity
    if identityOrToken == nil, let istioCA, let tokenFile = istioCA.tokenFile {
      identityOrToken = try Self.identity(fromTokenFile: tokenFile, trustDomain: trustDomain)
    }

    return try AgentConfiguration(
      socketPath: EnvironmentOption.value(self.socket, name: "socket") ?? defaults.socketPath,
      socketMode: mode ?? 0o660,
      stateDirectory: EnvironmentOption.value(self.stateDir, name: "state-dir") ?? defaults.stateDirectory,
      trustDomain: trustDomain,
      identity: identityOrToken,
      certificateTTL: ttl ?? .seconds(86400),
      keyType: keyType ?? .ecdsaP256,
      rotation: RotationSchedule(ratio: ratio, jitter: jitter),
      caSource: caSource,
      istioCA: istioCA,
      logLevel: level ?? .info
    )
  }

  private func istioCAConfiguration() throws(ConfigurationError) -> IstioCAConfiguration? {
    let mode = EnvironmentOption.value(self.ca, name: "ca") ?? "local"
    switch mode {
    case "local":
      return nil
    case "istio":
      break
    default:
      throw ConfigurationError(key: "ca", value: mode, allowed: "local or istio")
    }
    guard let addressText = EnvironmentOption.value(self.caAddress, name: "ca-address") else {
      throw ConfigurationError(key: "ca-address", value: "", allowed: "HOST:PORT of the CA, because --ca istio is set")
    }
    guard let address = IstioCAConfiguration.parseAddress(addressText) else {
      throw ConfigurationError(
        key: "ca-address", value: addressText, allowed: "HOST:PORT, e.g. istiod.istio-system.svc:15012")
    }
    var headers: [String: String] = [:]
    for header in self.caHeaders {
      guard let equals = header.firstIndex(of: "="), equals != header.startIndex else {
        throw ConfigurationError(key: "ca-header", value: header, allowed: "KEY=VALUE")
      }
      headers[String(header[..<equals])] = String(header[header.index(after: equals)...])
    }
    let defaultToken = "/var/run/secrets/tokens/istio-token"
    let tokenFile =
      EnvironmentOption.value(self.tokenFile, name: "token-file")
      ?? (FileManager.default.fileExists(atPath: defaultToken) ? defaultToken : nil)
    let plaintext = self.caInsecurePlaintext || EnvironmentOption.value(nil, name: "ca-insecure-plaintext") == "true"
    return try IstioCAConfiguration(
      host: address.host,
      port: address.port,
      rootsFile: EnvironmentOption.value(self.caRoot, name: "ca-root"),
      serverName: EnvironmentOption.value(self.caServerName, name: "ca-server-name"),
      insecurePlaintext: plaintext,
      tokenFile: tokenFile,
      clusterID: EnvironmentOption.value(self.clusterID, name: "cluster-id") ?? "Kubernetes",
      extraHeaders: headers
    )
  }

  /// The identity a token names, as Istio derives it from `system:serviceaccount:<ns>:<sa>`.
  static func identity(fromTokenFile path: String, trustDomain: String) throws(ConfigurationError) -> SPIFFEID {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ConfigurationError(key: "token-file", value: path, allowed: "a readable JWT file")
    }
    let subject: String?
    do {
      subject = try UnverifiedJWT(String(decoding: data, as: UTF8.self)).subject
    } catch {
      throw ConfigurationError(key: "token-file", value: path, allowed: "a JWT (\(error.message))")
    }
    guard let subject, let account = ServiceAccount(subject: subject) else {
      throw ConfigurationError(
        key: "identity",
        value: "",
        allowed:
          "a SPIFFE ID, because the token's subject \(subject ?? "(none)") is not system:serviceaccount:<ns>:<sa>"
      )
    }
    do {
      return try account.spiffeID(trustDomain: trustDomain)
    } catch {
      throw ConfigurationError(key: "token-file", value: path, allowed: error.reason)
    }
  }
}
