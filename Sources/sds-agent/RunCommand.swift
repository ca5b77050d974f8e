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

  @Option(name: .customLong("log-format"), help: "plain (default; journald-friendly) or json.")
  var logFormat: String?

  @Option(
    help:
      "Admin endpoint (/metrics, /healthz, /readyz, /debug/*, POST /rotate): 127.0.0.1:PORT, [::1]:PORT or unix:/path. Off by default."
  )
  var admin: String?

  @Option(
    help:
      "YAML config file whose keys are these flags' names (also SDS_AGENT_CONFIG). Flags > environment > file > defaults."
  )
  var config: String?

  /// The flags given, by key.
  var flags: [String: [String]] {
    var flags: [String: [String]] = [:]
    let single: [(String, String?)] = [
      ("socket", self.socket), ("socket-mode", self.socketMode), ("state-dir", self.stateDir),
      ("trust-domain", self.trustDomain), ("identity", self.identity), ("cert-ttl", self.certTTL),
      ("key-type", self.keyType), ("rotation-ratio", self.rotationRatio), ("rotation-jitter", self.rotationJitter),
      ("ca-cert", self.caCert), ("ca-key", self.caKey), ("ca-chain", self.caChain), ("ca", self.ca),
      ("ca-address", self.caAddress), ("ca-root", self.caRoot), ("ca-server-name", self.caServerName),
      ("token-file", self.tokenFile), ("cluster-id", self.clusterID), ("log-level", self.logLevel),
      ("log-format", self.logFormat), ("admin", self.admin),
      ("ca-insecure-plaintext", self.caInsecurePlaintext ? "true" : nil),
    ]
    for (key, value) in single {
      if let value { flags[key] = [value] }
    }
    if !self.caHeaders.isEmpty { flags["ca-header"] = self.caHeaders }
    return flags
  }

  func run() async throws {
    let loader = ConfigurationLoader(flags: self.flags, configFile: self.config)
    let configuration: AgentConfiguration
    do {
      configuration = try loader.load()
    } catch {
      throw ValidationError(error.description)
    }
    let logging = AgentLogging.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
    let logger = Logger(label: "sds-agent")

    let agent: Agent
    do {
      agent = try await Agent.build(configuration: configuration, loader: loader, logging: logging, logger: logger)
    } catch {
      logger.critical("cannot start", metadata: ["error": "\(error)"])
      throw ExitCode(1)
    }
    let banner = """
      sds-agent: serving SDS on \(agent.socketPath) (identity \(configuration.identity))
      --- envoy bootstrap snippet ---
      \(EnvoyBootstrapSnippet.yaml(socketPath: agent.socketPath))--- end ---

      """
    // Unbuffered, so a supervisor or test reading a pipe sees it at once.
    FileHandle.standardOutput.write(Data(banner.utf8))
    logger.info(
      "serving SDS",
      metadata: [
        "socket": "\(agent.socketPath)", "identity": "\(configuration.identity)",
        "cert_ttl": "\(DurationParser.format(configuration.certificateTTL))",
        "admin": "\(configuration.admin?.description ?? "off")",
      ]
    )
    try await agent.run()
    logger.info("stopped")
  }
}
