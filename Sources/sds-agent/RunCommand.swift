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
    name: .customLong("caller-identity"),
    help:
      "Who callers are: agent (default: all get --identity), peer (kernel peer credentials mapped by --workload), token (a forwarded JWT), peer-or-token, peer-and-token."
  )
  var callerIdentity: String?

  @Option(
    name: .customLong("workload"),
    help:
      "Maps callers to an identity (repeatable; first match wins): uid=N, gid=N and/or exe=/path, and spiffe-id=spiffe://…, comma-separated. SDS_AGENT_WORKLOAD separates rules with ';'."
  )
  var workloads: [String] = []

  @Option(
    name: .customLong("jwt-keys"),
    help: "PEM public keys or a JWKS that verify forwarded tokens (iss, aud istio-ca, exp; sub names the identity).")
  var jwtKeys: String?

  @Option(
    name: .customLong("workload-idle-timeout"),
    help: "How long a workload identity without streams is kept (default 10m).")
  var workloadIdleTimeout: String?

  @Option(name: .customLong("caller-stream-rate"), help: "New SDS streams per caller, e.g. 50/s (default).")
  var callerStreamRate: String?

  @Option(
    name: .customLong("caller-certificate-rate"),
    help: "Certificates one caller's streams may cause to be issued, e.g. 10/m (default).")
  var callerCertificateRate: String?

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
      ("caller-identity", self.callerIdentity), ("jwt-keys", self.jwtKeys),
      ("workload-idle-timeout", self.workloadIdleTimeout), ("caller-stream-rate", self.callerStreamRate),
      ("caller-certificate-rate", self.callerCertificateRate),
    ]
    for (key, value) in single {
      if let value { flags[key] = [value] }
    }
    if !self.caHeaders.isEmpty { flags["ca-header"] = self.caHeaders }
    if !self.workloads.isEmpty { flags["workload"] = self.workloads }
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
    let node = configuration.nodeAgent
    let callers =
      node.identification == .agent
      ? "identity \(configuration.identity)"
      : "callers identified by \(node.identification.rawValue), \(node.rules.count) workload rule(s)"
    let banner = """
      sds-agent: serving SDS on \(agent.socketPath) (\(callers))
      --- envoy bootstrap snippet ---
      \(EnvoyBootstrapSnippet.yaml(socketPath: agent.socketPath, identification: node.identification))--- end ---

      """
    // Unbuffered, so a supervisor or test reading a pipe sees it at once.
    FileHandle.standardOutput.write(Data(banner.utf8))
    logger.info(
      "serving SDS",
      metadata: [
        "socket": "\(agent.socketPath)", "identity": "\(configuration.identity)",
        "caller_identity": "\(node.identification.rawValue)",
        "cert_ttl": "\(DurationParser.format(configuration.certificateTTL))",
        "admin": "\(configuration.admin?.description ?? "off")",
      ]
    )
    try await agent.run()
    logger.info("stopped")
  }
}
