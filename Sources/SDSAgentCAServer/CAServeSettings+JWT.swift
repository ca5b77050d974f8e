import SDSAgent
import SDSAgentCore

extension CAServeSettings {
  package static let jwtSVIDTTL = Setting<Duration>(
    "jwt-svid-ttl", "DURATION",
    help: "Lifetime of the JWT-SVIDs signed for fetch-mode agents (JWTSVIDService); a key that stopped signing "
      + "stays in the JWT bundle this long. With --datastore at most --max-ttl, which also bounds its default.",
    allowed: AgentSettings.jwtSVIDTTL.allowed, default: .seconds(300), shownDefault: "5m", reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(10) ... .seconds(86400)) })
}
