import SDSAgentCore

/// The settings of the SPIFFE Workload API (`workload-api*`), declared like every other setting.
extension AgentSettings {
  package static let workloadAPI = Setting<Bool>(
    "workload-api", "",
    help: "Serve the SPIFFE Workload API (X.509-SVIDs and bundles for workloads that are not Envoy) on the SDS "
      + "socket and --workload-api-socket; false answers its methods UNIMPLEMENTED.",
    kind: .flag, allowed: "true or false", default: true, shownDefault: "true", reload: .restart,
    parse: { Bool($0) }, effective: { "\($0.workloadAPI.enabled)" })

  package static let workloadAPISocket = Setting<String>(
    "workload-api-socket", "PATH",
    help: "A second Unix socket that serves the Workload API only (SPIFFE_ENDPOINT_SOCKET=unix://PATH).",
    allowed: "a path", reload: .restart, parse: nonEmpty, effective: { $0.workloadAPI.socketPath ?? "" })

  package static let workloadAPISocketMode = Setting<UInt32>(
    "workload-api-socket-mode", "MODE",
    help: "Octal permission bits of the Workload API socket file.",
    allowed: "octal permission bits such as 0660", default: 0o660, shownDefault: "0660",
    reload: .restart, parse: { UInt32($0, radix: 8).flatMap { $0 <= 0o777 ? $0 : nil } },
    effective: { "0" + String($0.workloadAPI.socketMode, radix: 8) })

  package static let workloadAPISocketGroup = Setting<UInt32>(
    "workload-api-socket-group", "GROUP",
    help: "Group (name or number) that owns the Workload API socket file.",
    allowed: "an existing group's name or number", reload: .restart,
    parse: { WorkloadAPIConfiguration.groupID($0) },
    effective: { $0.workloadAPI.socketGroup.map { "\($0)" } ?? "" })

  package static let jwtSVIDTTL = Setting<Duration>(
    "jwt-svid-ttl", "DURATION",
    help: "Lifetime of the JWT-SVIDs the Workload API signs (FetchJWTSVID); a token is signed again at half of it.",
    allowed: "a duration from 10s to 24h, such as 5m", default: .seconds(300), shownDefault: "5m", reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(10) ... .seconds(86400)) },
    effective: { DurationParser.format($0.workloadAPI.jwtSVIDTTL) })

  /// The Workload API's place, from its settings.
  static func workloadAPIConfiguration(_ settings: SettingsSource) throws(ConfigurationError)
    -> WorkloadAPIConfiguration
  {
    WorkloadAPIConfiguration(
      enabled: try settings.require(workloadAPI),
      socketPath: try settings.read(workloadAPISocket),
      socketMode: try settings.require(workloadAPISocketMode),
      socketGroup: try settings.read(workloadAPISocketGroup),
      jwtSVIDTTL: try settings.require(jwtSVIDTTL))
  }
}
