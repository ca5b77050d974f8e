import Foundation
import Logging
import SDSAgentCore

/// The settings of on-demand certificates (`on-demand-*`), declared like every other setting.
extension AgentSettings {
  package static let onDemandNames = Setting<DNSNamePattern>(
    "on-demand-names", "PATTERN",
    help: "DNS names (repeatable; *.example.com matches one label) for which a stream may ask, by the SNI, "
      + "for a TLS server certificate minted by the embedded CA (Envoy's on-demand certificate selector).",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "a DNS name or *.domain", reload: .restart,
    parse: { text throws(ConfigurationError) in
      do throws(DNSNameError) {
        return try DNSNamePattern(parsing: text)
      } catch {
        throw ConfigurationError(
          key: "on-demand-names", value: text, allowed: "a DNS name or *.domain (\(error.reason))")
      }
    },
    effective: { ($0.onDemand?.patterns ?? []).map(\.description).joined(separator: ",") })

  package static let onDemandTTL = Setting<Duration>(
    "on-demand-ttl", "DURATION",
    help: "Lifetime of on-demand server certificates.",
    allowed: "a duration from 10s to 365d", default: .seconds(86400), shownDefault: "24h", reload: .restart,
    parse: { DurationParser.parse($0, in: .seconds(10) ... .seconds(365 * 86400)) },
    effective: { $0.onDemand.map { DurationParser.format($0.ttl) } ?? "" })

  package static let onDemandKeyType = Setting<WorkloadKeyType>(
    "on-demand-key-type", "TYPE",
    help: "Key type of on-demand server certificates: ecdsa-p256 or rsa-2048.",
    allowed: "ecdsa-p256 or rsa-2048", default: .ecdsaP256, shownDefault: "ecdsa-p256", reload: .restart,
    parse: WorkloadKeyType.init(rawValue:), effective: { $0.onDemand?.keyType.rawValue ?? "" })

  package static let onDemandMaxNames = Setting<Int>(
    "on-demand-max-names", "N",
    help: "On-demand names held at once; beyond it a new name is refused (the handshake fails at once).",
    allowed: "a number from 1 to 100000", default: 1000, shownDefault: "1000", reload: .restart,
    parse: { Int($0).flatMap { (1...100_000).contains($0) ? $0 : nil } },
    effective: { $0.onDemand.map { "\($0.maximumNames)" } ?? "" })

  package static let onDemandRate = Setting<Rate>(
    "on-demand-rate", "RATE",
    help: "New on-demand names minted, at most, e.g. 60/m; beyond it a new name is refused.",
    allowed: "a rate such as 60/m", default: Rate(count: 60, period: .seconds(60)), shownDefault: "60/m",
    reload: .restart, parse: Rate.init(parsing:), effective: { $0.onDemand?.rate.description ?? "" })

  package static let onDemandCallers = Setting<SPIFFEID>(
    "on-demand-callers", "ID",
    help: "Identities whose streams may ask for on-demand names (repeatable). An on-demand certificate is a "
      + "server key: with --caller-identity other than agent, only the identities named may (by default none).",
    kind: .repeatable(separator: ",", yaml: .values), allowed: "a SPIFFE ID",
    shownDefault: "everyone with --caller-identity agent, else nobody",
    reload: .restart,
    parse: { text throws(ConfigurationError) in
      do throws(SPIFFEIDError) {
        return try SPIFFEID(parsing: text)
      } catch {
        throw ConfigurationError(key: "on-demand-callers", value: text, allowed: "a SPIFFE ID (\(error.reason))")
      }
    },
    effective: { ($0.onDemand?.callers ?? []).map(\.description).sorted().joined(separator: ",") })
}
