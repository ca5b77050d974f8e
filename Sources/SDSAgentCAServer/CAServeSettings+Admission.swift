import Foundation
import SDSAgent
import SDSAgentCore

extension CAServeSettings {
  /// A call's work (token verification, CSR verification, signing) is CPU work on Swift's
  /// cooperative pool, one thread a core: four calls per core keep every core busy while others
  /// wait on their connections, and bound an admitted call's wait to about four calls' work.
  package static var defaultMaximumInFlight: Int { 4 * ProcessInfo.processInfo.activeProcessorCount }

  package static let maximumInFlight = Setting<Int>(
    "max-inflight", "N",
    help: "Certificate requests in flight at most; more are answered UNAVAILABLE at once with a "
      + "grpc-retry-pushback-ms hint (0: no cap).",
    allowed: "a whole number from 0 to 100000", default: defaultMaximumInFlight,
    shownDefault: "4 per CPU core, \(defaultMaximumInFlight) here", reload: .restart,
    parse: { Int($0).flatMap { (0...100_000).contains($0) ? $0 : nil } })

  package static let callerRate = Setting<Double>(
    "caller-rate", "R",
    help: "Signings a second per caller (the token's identity; a node agent for all its workloads), "
      + "in bursts of up to one second's worth; more are answered UNAVAILABLE with a retry hint (0: no cap).",
    allowed: "a number of signings a second from 0 to 100000, such as 5 or 0.5", default: 0, shownDefault: "0, no cap",
    reload: .restart, parse: { Double($0).flatMap { $0.isFinite && (0...100_000).contains($0) ? $0 : nil } })
}
