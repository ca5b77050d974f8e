import SDSAgent
import SDSAgentCore

/// Every option of `sds-agent ca serve`, declared with the `Setting` type `run` uses: its help,
/// its environment variable (`SDS_AGENT_CA_SERVE_<KEY>`, apart from the agent's `SDS_AGENT_<KEY>`,
/// since both may run on one host) and how its value is checked. The keys it shares with `run` (trust domain, CA files, log level) are `run`'s
/// declarations. `ca serve` has no reload: a change takes effect when it is started again.
package enum CAServeSettings {
  package static let environmentPrefix = "SDS_AGENT_CA_SERVE_"

  package static let listen = Setting<(host: String, port: Int)>(
    "listen", "HOST:PORT",
    help: "HOST:PORT to listen on (e.g. 0.0.0.0:15012).",
    allowed: "HOST:PORT", reload: .restart, parse: IstioCAConfiguration.parseAddress)

  package static let stateDirectory = Setting<String>(
    "state-dir", "DIR",
    help: "Directory for the generated CA; its ca-cert.pem is the root clients pass as --ca-root.",
    allowed: "a path", reload: .restart, parse: AgentSettings.nonEmpty)

  package static let jwtKeys = Setting<String>(
    "jwt-keys", "FILE",
    help: "PEM public keys or a JWKS document that verify callers' tokens.",
    allowed: "a PEM or JWKS file", reload: .restart, parse: AgentSettings.nonEmpty)

  package static let jwtIssuer = Setting<String>(
    "jwt-issuer", "ISSUER",
    help: "Accepted token issuer (repeatable; default: the Kubernetes API server's usual issuers).",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "an issuer URL or name", reload: .restart,
    parse: AgentSettings.nonEmpty)

  package static let maximumTTL = Setting<Duration>(
    "max-ttl", "DURATION",
    help: "Longest certificate lifetime granted (default 24h).",
    allowed: "a duration from 2s to 365d, such as 1h or 24h", default: .seconds(86400), reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(2) ... .seconds(365 * 86400)) })

  package static let tlsSAN = Setting<String>(
    "tls-san", "NAME",
    help: "Extra DNS name or IP for the TLS serving certificate (repeatable).",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "a DNS name or IP address", reload: .restart,
    parse: AgentSettings.nonEmpty)

  package static let trustedNodeIdentity = Setting<SPIFFEID>(
    "trusted-node-identity", "ID",
    help: "SPIFFE ID of a node agent that may request its workloads' certificates with Istio's "
      + "ImpersonatedIdentity (repeatable; like CA_TRUSTED_NODE_ACCOUNTS).",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "a SPIFFE ID", reload: .restart,
    parse: { text throws(ConfigurationError) in
      do throws(SPIFFEIDError) {
        return try SPIFFEID(parsing: text)
      } catch {
        throw ConfigurationError(key: "trusted-node-identity", value: text, allowed: "a SPIFFE ID (\(error.reason))")
      }
    })

  package static let admin = Setting<AgentConfiguration.AdminAddress>(
    "admin", "ADDRESS",
    help: "Admin endpoint (/healthz, /debug/trust, POST /ca/rotate-root): 127.0.0.1:PORT, [::1]:PORT or unix:/path.",
    allowed: AgentSettings.admin.allowed, reload: .restart, parse: AgentConfiguration.AdminAddress.init)

  package static let rootOverlap = Setting<Duration>(
    "root-overlap", "DURATION",
    help: "In a root rotation, how long both roots are in every answer before the new one signs; at least "
      + "--max-ttl (default 1h, or --max-ttl if longer).",
    allowed: AgentSettings.rootOverlap.allowed, reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(1) ... .seconds(365 * 86400)) })

  package static let crlURL = Setting<CRLDistributionPoint>(
    "crl-url", "URL",
    help: "http:// URL written as the CRL distribution point into every leaf signed; fetch-mode agents follow "
      + "the CRL there (serve it with --crl-listen).",
    allowed: "an http:// URL with a host, of at most 2048 characters", reload: .restart,
    parse: { CRLDistributionPoint(url: $0) })

  package static let crlListen = Setting<(host: String, port: Int)>(
    "crl-listen", "HOST:PORT",
    help: "HOST:PORT to serve the current CRL on over plain HTTP, at --crl-url's path (e.g. 0.0.0.0:8081).",
    allowed: "HOST:PORT", reload: .restart, parse: IstioCAConfiguration.parseAddress)

  /// Every option of `ca serve`, in the order help shows them.
  package static let all: [SettingDeclaration] = [
    listen.declaration, stateDirectory.declaration, jwtKeys.declaration, jwtIssuer.declaration,
    AgentSettings.trustDomain.declaration, maximumTTL.declaration, tlsSAN.declaration,
    trustedNodeIdentity.declaration, AgentSettings.caCertificate.declaration, AgentSettings.caKey.declaration,
    AgentSettings.caChain.declaration, AgentSettings.logLevel.declaration, admin.declaration,
    rootOverlap.declaration, AgentSettings.crlValidity.declaration,
    crlURL.declaration, crlListen.declaration,
    maximumInFlight.declaration, callerRate.declaration,
    datastore.declaration, datastorePasswordFile.declaration, keyEncryptionKey.declaration, replicaName.declaration,
    jwtSVIDTTL.declaration,
  ]
}
