import Foundation
import Logging
import SDSAgentCore

/// Every setting of `sds-agent run`. The command line, `SDS_AGENT_<KEY>`, the config file's
/// keys, `run --help`, `check-config` and reload's restart warning are all derived from
/// `all`; `ConfigurationLoader` turns the values into an `AgentConfiguration`.
package enum AgentSettings {
  package static let socket = Setting<String>(
    "socket", "PATH",
    help: "Unix socket to serve SDS on.",
    allowed: "a path",
    shownDefault: "$RUNTIME_DIRECTORY/sds.sock under systemd, /run/sds-agent/sds.sock as root, "
      + "else $XDG_RUNTIME_DIR/sds-agent/sds.sock or ./.sds-agent/sds.sock",
    reload: .restart, parse: nonEmpty, effective: { $0.socketPath })

  package static let socketMode = Setting<UInt32>(
    "socket-mode", "MODE",
    help: "Octal permission bits of the socket file.",
    allowed: "octal permission bits such as 0660", default: 0o660, shownDefault: "0660",
    reload: .restart, parse: { UInt32($0, radix: 8).flatMap { $0 <= 0o777 ? $0 : nil } },
    effective: { "0" + String($0.socketMode, radix: 8) })

  package static let stateDirectory = Setting<String>(
    "state-dir", "DIR",
    help: "Directory for the generated CA (mode 0700).",
    allowed: "a path", shownDefault: "$STATE_DIRECTORY, /var/lib/sds-agent as root, else ~/.local/state/sds-agent",
    reload: .restart, parse: nonEmpty, effective: { $0.stateDirectory })

  package static let trustDomain = Setting<String>(
    "trust-domain", "TD",
    help: "SPIFFE trust domain.",
    allowed: "a trust domain such as cluster.local", default: "cluster.local", shownDefault: "cluster.local",
    reload: .restart, parse: nonEmpty, effective: { $0.trustDomain })

  package static let identity = Setting<SPIFFEID>(
    "identity", "ID",
    help: "SPIFFE ID of the workload (in fetch mode, by default the one the token names).",
    allowed: "a SPIFFE ID such as spiffe://cluster.local/ns/default/sa/default",
    shownDefault: "spiffe://<trust-domain>/ns/default/sa/default",
    reload: .restart,
    parse: { text throws(ConfigurationError) in
      do throws(SPIFFEIDError) {
        return try SPIFFEID(parsing: text)
      } catch {
        throw ConfigurationError(key: "identity", value: text, allowed: "a SPIFFE ID (\(error.reason))")
      }
    },
    effective: { $0.identity.description })

  package static let certificateTTL = Setting<Duration>(
    "cert-ttl", "DURATION",
    help: "Lifetime of workload certificates, e.g. 30s, 1h, 24h, 1h30m.",
    allowed: "a duration from 2s to 365d, such as 30s, 1h or 24h", default: .seconds(86400), shownDefault: "24h",
    reload: .live([.identities]), parse: { DurationParser.parse($0, in: .seconds(2) ... .seconds(365 * 86400)) },
    effective: { DurationParser.format($0.certificateTTL) })

  package static let keyType = Setting<WorkloadKeyType>(
    "key-type", "TYPE",
    help: "Workload key type: ecdsa-p256 or rsa-2048.",
    allowed: "ecdsa-p256 or rsa-2048", default: .ecdsaP256, shownDefault: "ecdsa-p256",
    reload: .live([.identities]), parse: WorkloadKeyType.init(rawValue:), effective: { $0.keyType.rawValue })

  package static let rotationRatio = Setting<Double>(
    "rotation-ratio", "R",
    help: "Renew at this fraction of the lifetime.",
    allowed: "a number between 0.1 and 0.9", default: 0.5, shownDefault: "0.5",
    reload: .live([.identities]), parse: { Double($0).flatMap { (0.1...0.9).contains($0) ? $0 : nil } },
    effective: { "\($0.rotation.ratio)" })

  /// Its range depends on the ratio; `ConfigurationLoader` checks it.
  package static let rotationJitter = Setting<Double>(
    "rotation-jitter", "J",
    help: "Move the renewal by up to this fraction of the lifetime either way.",
    allowed: "a number from 0 to less than min(ratio, 1 - ratio)", shownDefault: "0.1",
    reload: .live([.identities]), parse: { Double($0).flatMap { $0 >= 0 ? $0 : nil } },
    effective: { "\($0.rotation.jitter)" })

  package static let rootOverlap = Setting<Duration>(
    "root-overlap", "DURATION",
    help: "In a root rotation of the embedded CA, how long both roots are trusted before the new one signs.",
    allowed: "a duration from 1s to 365d, such as 1h", default: .seconds(3600), shownDefault: "1h",
    reload: .live([.rootRotation]), parse: { DurationParser.parse($0, in: .seconds(1) ... .seconds(365 * 86400)) },
    effective: { DurationParser.format($0.rootOverlap) })

  package static let crlValidity = Setting<Duration>(
    "crl-validity", "DURATION",
    help: "How long the embedded CA's revocation lists are valid; each is signed again at half of it.",
    allowed: "a duration from 5m to 7d, such as 4h", default: .seconds(4 * 3600), shownDefault: "4h",
    reload: .restart, parse: { DurationParser.parse($0, in: .seconds(300) ... .seconds(7 * 86400)) },
    effective: { DurationParser.format($0.crlValidity) })

  package static let trustBundle = Setting<FederatedBundleSource>(
    "trust-bundle", "TD=FILE",
    help: "Another trust domain's bundle (repeatable), e.g. spiffe://other.example=/etc/bundles/other.pem: PEM "
      + "or a SPIFFE bundle document, watched and re-read; served as spiffe://<trust-domain> and in ALL.",
    kind: .repeatable(separator: ",", yaml: .entries), allowed: FederatedBundleSource.syntax,
    reload: .live([.federation]),
    parse: { text throws(ConfigurationError) in try FederatedBundleSource(parsing: text) },
    effective: { $0.federatedBundles.map(\.description).joined(separator: ",") })

  package static let spiffeValidator = Setting<Bool>(
    "spiffe-validator", "",
    help: "Serve spiffe://<trust-domain> and ALL for Envoy's SPIFFE certificate validator; false serves "
      + "plain trusted_ca (and refuses ALL).",
    kind: .flag, allowed: "true or false", default: true, shownDefault: "true", reload: .restart,
    parse: { Bool($0) }, effective: { "\($0.spiffeValidator)" })

  package static let secret = Setting<FileSecretSource>(
    "secret", "FIELDS",
    help: "A secret served under its name from files (repeatable): name=web,cert=FILE,key=FILE"
      + "[,ocsp-staple=FILE] or name=clients,ca=FILE[,crl=FILE] or name=token,generic=FILE (generic.KEY=FILE per "
      + "key); watched, checked, pushed on change.",
    kind: .repeatable(separator: ";", yaml: .fields), allowed: FileSecretSource.syntax, reload: .live([.fileSecrets]),
    parse: { text throws(ConfigurationError) in try FileSecretSource(parsing: text) },
    effective: { $0.fileSecrets.map(\.description).joined(separator: "; ") })

  package static let fileSecretDirs = Setting<String>(
    "file-secret-dirs", "DIR",
    help: "Directories (repeatable) under which Istio's file-cert:<cert>~<key> and file-root:<ca> names may "
      + "point; without one, such names are refused.",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "an absolute directory", reload: .live([.fileSecrets]),
    parse: { $0.hasPrefix("/") && !$0.split(separator: "/").contains("..") ? $0 : nil },
    effective: { $0.fileSecretDirectories.joined(separator: ",") })

  package static let fileSecretCallers = Setting<FileSecretCallers>(
    "file-secret-callers", "FIELDS",
    help: "In node-agent mode, the identities that may have file-cert: and file-root: names under a directory "
      + "(repeatable): dir=/etc/tls/edge,callers=spiffe://…+spiffe://…; the deepest directory naming a path "
      + "decides, and a path under none is served to nobody.",
    kind: .repeatable(separator: ";", yaml: .fields), allowed: FileSecretCallers.syntax, reload: .live([.fileSecrets]),
    parse: { text throws(ConfigurationError) in try FileSecretCallers(parsing: text) },
    effective: { $0.fileSecretCallers.map(\.description).joined(separator: "; ") })

  package static let caCertificate = Setting<String>(
    "ca-cert", "FILE",
    help: "PEM file with the operator's signing CA certificate (with --ca-key).",
    allowed: "a certificate file", reload: .live([.operatorCA]), parse: nonEmpty,
    effective: { $0.caSource.files?.certificate ?? "" })

  package static let caKey = Setting<String>(
    "ca-key", "FILE",
    help: "PEM file with the signing CA's private key (mode 0600).",
    allowed: "a key file", reload: .live([.operatorCA]), parse: nonEmpty, effective: { $0.caSource.files?.key ?? "" })

  package static let caChain = Setting<String>(
    "ca-chain", "FILE",
    help: "PEM file with the intermediates and the root above --ca-cert.",
    allowed: "a PEM file", reload: .live([.operatorCA]), parse: nonEmpty, effective: { $0.caSource.files?.chain ?? "" })

  package static let ca = Setting<String>(
    "ca", "MODE",
    help: "Where certificates come from: local (the embedded CA) or istio (an Istio-compatible CA).",
    allowed: "local or istio", default: "local", shownDefault: "local",
    reload: .restart, parse: { ["local", "istio"].contains($0) ? $0 : nil },
    effective: { $0.istioCA == nil ? "local" : "istio" })

  package static let caAddress = Setting<CAAddress>(
    "ca-address", "HOST:PORT",
    help: "The Istio-compatible CA, e.g. istiod.istio-system.svc:15012 (repeatable: replicas, spread over and "
      + "failed over between; a name's addresses are tried in turn).",
    kind: .repeatable(), allowed: "HOST:PORT, e.g. istiod.istio-system.svc:15012", reload: .restart,
    parse: { IstioCAConfiguration.parseAddress($0).map { CAAddress(host: $0.host, port: $0.port) } },
    effective: { $0.istioCA?.addresses.map(\.description).joined(separator: ",") ?? "" })

  package static let caRoot = Setting<String>(
    "ca-root", "FILE",
    help: "PEM roots that verify the CA's TLS certificate.",
    allowed: "a PEM file", reload: .restart, parse: nonEmpty, effective: { $0.istioCA?.rootsFile ?? "" })

  package static let caServerName = Setting<String>(
    "ca-server-name", "NAME",
    help: "Name expected in the CA's TLS certificate and sent as SNI (Istio's ISTIOD_SAN).",
    allowed: "a DNS name", shownDefault: "the host", reload: .restart, parse: nonEmpty,
    effective: { $0.istioCA?.serverName ?? "" })

  package static let caInsecurePlaintext = Setting<Bool>(
    "ca-insecure-plaintext", "",
    help: "Talk to a CA on port 15010 without TLS.",
    kind: .flag, allowed: "true or false", default: false, reload: .restart, parse: { Bool($0) },
    effective: { "\($0.istioCA?.insecurePlaintext ?? false)" })

  package static let tokenFile = Setting<String>(
    "token-file", "FILE",
    help: "JWT sent as the bearer token, re-read on every request.",
    allowed: "a readable JWT file", shownDefault: "\(defaultTokenFile) when present", reload: .restart,
    parse: nonEmpty, effective: { $0.istioCA?.tokenFile ?? "" })

  package static let clusterID = Setting<String>(
    "cluster-id", "ID",
    help: "Sent to the CA as the ClusterID header.",
    allowed: "a cluster name", default: "Kubernetes", shownDefault: "Kubernetes", reload: .restart,
    parse: nonEmpty, effective: { $0.istioCA?.clusterID ?? "" })

  package static let caHeader = Setting<(name: String, value: String)>(
    "ca-header", "K=V",
    help: "Extra header for the CA (repeatable), like Istio's CA_HEADER_*.",
    kind: .repeatable(separator: ",", yaml: .entries), allowed: "KEY=VALUE", reload: .restart,
    parse: { text in
      guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { return nil }
      return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    },
    effective: {
      ($0.istioCA?.extraHeaders ?? [:]).sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ",")
    }
  )

  package static let logLevel = Setting<Logger.Level>(
    "log-level", "LEVEL",
    help: "trace, debug, info, notice, warning, error or critical.",
    allowed: "trace, debug, info, notice, warning, error or critical", default: .info, shownDefault: "info",
    reload: .live([.logging]), parse: Logger.Level.init(rawValue:), effective: { $0.logLevel.rawValue })

  package static let logFormat = Setting<AgentConfiguration.LogFormat>(
    "log-format", "FORMAT",
    help: "plain (journald-friendly) or json.",
    allowed: "plain or json", default: .plain, shownDefault: "plain",
    reload: .restart, parse: AgentConfiguration.LogFormat.init(rawValue:), effective: { $0.logFormat.rawValue })

  package static let admin = Setting<AgentConfiguration.AdminAddress>(
    "admin", "ADDRESS",
    help: "Admin endpoint (/metrics, /healthz, /readyz, /debug/*, POST /rotate): 127.0.0.1:PORT, [::1]:PORT "
      + "or unix:/path.",
    allowed: "127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:/absolute/path", shownDefault: "off",
    reload: .restart, parse: AgentConfiguration.AdminAddress.init, effective: { $0.admin?.description ?? "off" })

  package static let callerIdentity = Setting<CallerIdentification>(
    "caller-identity", "MODE",
    help: "Who callers are: agent (all get --identity), peer (kernel peer credentials mapped by --workload), "
      + "token (a forwarded JWT), peer-or-token, peer-and-token.",
    allowed: CallerIdentification.allCases.map(\.rawValue).joined(separator: ", "), default: .agent,
    shownDefault: "agent", reload: .restart, parse: CallerIdentification.init(rawValue:),
    effective: { $0.nodeAgent.identification.rawValue })

  package static let workload = Setting<WorkloadRule>(
    "workload", "RULE",
    help: "Maps callers to an identity (repeatable; first match wins): uid=N, gid=N and/or exe=/path, and "
      + "spiffe-id=spiffe://…, comma-separated. SDS_AGENT_WORKLOAD separates rules with ';'.",
    kind: .repeatable(separator: ";", yaml: .fields), allowed: WorkloadRule.syntax, reload: .live([.admission]),
    parse: { text throws(ConfigurationError) in try WorkloadRule(parsing: text) },
    effective: { $0.nodeAgent.rules.map(\.description).joined(separator: "; ") })

  package static let jwtKeys = Setting<String>(
    "jwt-keys", "FILE",
    help: "PEM public keys or a JWKS that verify forwarded tokens (iss, aud istio-ca, exp; sub names the identity).",
    allowed: "a PEM or JWKS file", reload: .live([.admission]), parse: nonEmpty,
    effective: { $0.nodeAgent.jwtKeysFile ?? "" })

  package static let workloadIdleTimeout = Setting<Duration>(
    "workload-idle-timeout", "DURATION",
    help: "How long a workload identity without streams is kept.",
    allowed: "a duration from 1s to 7d, such as 10m", default: CallerLimits().idleTimeout, shownDefault: "10m",
    reload: .live([.identities, .onDemand]),
    parse: { DurationParser.parse($0, in: .seconds(1) ... .seconds(7 * 86400)) },
    effective: { DurationParser.format($0.nodeAgent.limits.idleTimeout) })

  package static let callerStreamRate = Setting<Rate>(
    "caller-stream-rate", "RATE",
    help: "New SDS streams per caller, e.g. 50/s.",
    allowed: "a rate such as 50/s, 600/m or 1000/h", default: CallerLimits().streamRate, shownDefault: "50/s",
    reload: .live([.admission]), parse: Rate.init(parsing:), effective: { $0.nodeAgent.limits.streamRate.description })

  package static let callerCertificateRate = Setting<Rate>(
    "caller-certificate-rate", "RATE",
    help: "Certificates one caller's streams may cause to be issued, e.g. 10/m.",
    allowed: "a rate such as 10/m", default: CallerLimits().certificateRate, shownDefault: "10/m",
    reload: .live([.admission]), parse: Rate.init(parsing:),
    effective: { $0.nodeAgent.limits.certificateRate.description })

  /// Only on the command line or as `SDS_AGENT_CONFIG`: the file cannot name itself.
  package static let config = Setting<String>(
    "config", "FILE",
    help: "YAML config file whose keys are these options' names. Options > environment > file > defaults.",
    allowed: "a readable YAML file", sources: [.flag, .environment], reload: .restart, parse: nonEmpty,
    effective: { _ in "" })

  /// Every setting of `run`, in the order help and `check-config` show them.
  package static let all: [SettingDeclaration] = [
    socket.declaration, socketMode.declaration, stateDirectory.declaration, trustDomain.declaration,
    identity.declaration, certificateTTL.declaration, keyType.declaration, rotationRatio.declaration,
    rotationJitter.declaration, rootOverlap.declaration, crlValidity.declaration, trustBundle.declaration,
    spiffeValidator.declaration,
    secret.declaration, fileSecretDirs.declaration, fileSecretCallers.declaration, onDemandNames.declaration,
    onDemandTTL.declaration,
    onDemandKeyType.declaration,
    onDemandMaxNames.declaration,
    onDemandRate.declaration, caCertificate.declaration, caKey.declaration,
    caChain.declaration, ca.declaration,
    caAddress.declaration, caRoot.declaration, caServerName.declaration, caInsecurePlaintext.declaration,
    tokenFile.declaration, clusterID.declaration, caHeader.declaration, logLevel.declaration, logFormat.declaration,
    admin.declaration, callerIdentity.declaration, workload.declaration, jwtKeys.declaration,
    workloadIdleTimeout.declaration, callerStreamRate.declaration, callerCertificateRate.declaration,
    config.declaration,
    onDemandCallers.declaration,
    workloadAPI.declaration, workloadAPISocket.declaration, workloadAPISocketMode.declaration,
    workloadAPISocketGroup.declaration, jwtSVIDTTL.declaration,
    caCRL.declaration, crlRefresh.declaration,
    caRootCRL.declaration, intermediateCRL.declaration,
    istioCredentialSockets.declaration,
    sessionTicketKeys.declaration,
  ]

  /// The settings a config file may set; `check-config` shows each one.
  package static var fileSettings: [SettingDeclaration] { all.filter { $0.sources.contains(.file) } }

  /// The keys whose change reload cannot apply: they take effect after a restart.
  package static func restartRequired(from old: AgentConfiguration, to new: AgentConfiguration) -> [String] {
    all.filter { !$0.reload.isLive && $0.effective(old) != $0.effective(new) }.map(\.key)
  }

  static let defaultTokenFile = "/var/run/secrets/tokens/istio-token"

  @Sendable package static func nonEmpty(_ text: String) -> String? { text.isEmpty ? nil : text }
}

extension AgentConfiguration.CASource {
  var files: (certificate: String, key: String, chain: String?)? {
    guard case .files(let certificate, let key, let chain) = self else { return nil }
    return (certificate, key, chain)
  }
}
