import SDSAgentCore

/// The settings of following a CA's CRLs in fetch mode (`ca-crl`, `crl-refresh`), declared like
/// every other setting.
extension AgentSettings {
  package static let caCRL = Setting<String>(
    "ca-crl", "FILE",
    help: "The CA's CRLs (PEM or DER, e.g. istiod's ca-crl.pem), watched; verified against the trust bundle "
      + "and served in every own validation context (fetch mode).",
    allowed: "a CRL file", reload: .restart, parse: AgentSettings.nonEmpty, effective: { $0.istioCA?.crlFile ?? "" })

  package static let crlRefresh = Setting<Duration>(
    "crl-refresh", "DURATION",
    help: "Longest time between two fetches of the CRL distribution point named in the agent's certificate "
      + "(fetch mode); it is fetched sooner at half the CRL's remaining validity.",
    allowed: "a duration from 1s to 1d, such as 1m", default: .seconds(60), shownDefault: "1m", reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(1) ... .seconds(86400)) },
    effective: { DurationParser.format($0.istioCA?.crlRefresh ?? .seconds(60)) })
}
