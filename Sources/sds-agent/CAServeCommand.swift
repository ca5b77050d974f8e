import ArgumentParser
import Foundation
import Logging
import SDSAgent
import SDSAgentCore

struct CAServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Serve istio.v1.auth.IstioCertificateService over TLS, authenticating callers by service-account JWTs.",
    discussion: """
      A root generated in --state-dir can be rotated in stages with `sds-agent ca rotate-root --admin ADDRESS`: \
      the new root joins every answer's bundle at once; after --root-overlap it signs, and the TLS serving \
      certificate is minted anew from it; one --max-ttl later the old root leaves the bundle. The overlap is \
      at least --max-ttl, since agents learn the new root only when they renew or when their --ca-root changes.
      """
  )

  @Option(help: "HOST:PORT to listen on (e.g. 0.0.0.0:15012).")
  var listen: String

  @Option(
    name: .customLong("state-dir"),
    help: "Directory for the generated CA; its ca-cert.pem is the root clients pass as --ca-root.")
  var stateDir: String

  @Option(name: .customLong("jwt-keys"), help: "PEM public keys or a JWKS document that verify callers' tokens.")
  var jwtKeys: String

  @Option(
    name: .customLong("jwt-issuer"),
    help: "Accepted token issuer (repeatable; default: the Kubernetes API server's usual issuers).")
  var jwtIssuers: [String] = []

  @Option(name: .customLong("trust-domain"), help: help(AgentSettings.trustDomain))
  var trustDomain: String?

  @Option(name: .customLong("max-ttl"), help: "Longest certificate lifetime granted (default 24h).")
  var maxTTL = "24h"

  @Option(name: .customLong("tls-san"), help: "Extra DNS name or IP for the TLS serving certificate (repeatable).")
  var tlsSANs: [String] = []

  @Option(
    name: .customLong("trusted-node-identity"),
    help:
      "SPIFFE ID of a node agent that may request its workloads' certificates with Istio's ImpersonatedIdentity (repeatable; like CA_TRUSTED_NODE_ACCOUNTS)."
  )
  var trustedNodeIdentities: [String] = []

  @Option(name: .customLong("ca-cert"), help: help(AgentSettings.caCertificate))
  var caCert: String?

  @Option(name: .customLong("ca-key"), help: help(AgentSettings.caKey))
  var caKey: String?

  @Option(name: .customLong("ca-chain"), help: help(AgentSettings.caChain))
  var caChain: String?

  @Option(name: .customLong("log-level"), help: help(AgentSettings.logLevel))
  var logLevel: String?

  @Option(
    name: .customLong("admin"),
    help: "Admin endpoint (/healthz, /debug/trust, POST /ca/rotate-root): 127.0.0.1:PORT, [::1]:PORT or unix:/path.")
  var admin: String?

  @Option(
    name: .customLong("root-overlap"),
    help:
      "In a root rotation, how long both roots are in every answer before the new one signs; at least --max-ttl (default 1h, or --max-ttl if longer)."
  )
  var rootOverlap: String?

  /// The keys `ca serve` shares with `run`, read through the same declarations.
  var shared: SettingsSource {
    var flags: [String: [String]] = [:]
    for (key, value) in [
      (AgentSettings.trustDomain.key, self.trustDomain), (AgentSettings.caCertificate.key, self.caCert),
      (AgentSettings.caKey.key, self.caKey), (AgentSettings.caChain.key, self.caChain),
      (AgentSettings.logLevel.key, self.logLevel), (AgentSettings.admin.key, self.admin),
      (AgentSettings.rootOverlap.key, self.rootOverlap),
    ] {
      flags[key] = value.map { [$0] }
    }
    return SettingsSource(flags: flags)
  }

  func run() async throws {
    guard let address = IstioCAConfiguration.parseAddress(self.listen) else {
      throw ValidationError("invalid listen \"\(self.listen)\": expected HOST:PORT")
    }
    guard let maxTTL = DurationParser.parse(self.maxTTL, in: .seconds(2) ... .seconds(365 * 86400)) else {
      throw ValidationError(
        "invalid max-ttl \"\(BoundedText(self.maxTTL))\": expected a duration from 2s to 365d, such as 1h or 24h")
    }
    let level: Logger.Level
    let trustDomain: String
    let caSource: AgentConfiguration.CASource
    let admin: AgentConfiguration.AdminAddress?
    var rootOverlap: Duration?
    do {
      let shared = self.shared
      level = try shared.require(AgentSettings.logLevel)
      trustDomain = try shared.require(AgentSettings.trustDomain)
      caSource = try ConfigurationLoader.caSource(shared)
      admin = try shared.read(AgentSettings.admin)
      if shared.value(AgentSettings.rootOverlap.key) != nil {
        rootOverlap = try shared.require(AgentSettings.rootOverlap)
      }
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
    var trustedNodes: [SPIFFEID] = []
    for text in self.trustedNodeIdentities {
      do {
        trustedNodes.append(try SPIFFEID(parsing: text))
      } catch {
        throw ValidationError("invalid --trusted-node-identity \"\(text)\": \(error.reason)")
      }
    }
    let configuration = CAServerConfiguration(
      host: address.host,
      port: address.port,
      stateDirectory: self.stateDir,
      caSource: caSource,
      trustDomain: trustDomain,
      jwtKeysFile: self.jwtKeys,
      jwtIssuers: self.jwtIssuers.isEmpty ? JWTCallerAuthenticator.defaultIssuers : self.jwtIssuers,
      maximumTTL: maxTTL,
      tlsNames: self.tlsSANs,
      trustedNodeIdentities: trustedNodes,
      admin: admin,
      rootOverlap: rootOverlap
    )
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

/// A shared setting's help, with its default, as `run --help` gives it.
private func help<Value>(_ setting: Setting<Value>) -> ArgumentHelp {
  ArgumentHelp(setting.help + (setting.declaration.shownDefault.map { " (default \($0))" } ?? ""))
}
