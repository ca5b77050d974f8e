/// How the agent decides who is calling.
package enum CallerIdentification: String, Sendable, CaseIterable {
  /// Every caller gets the agent's own identity (one workload per agent, like a sidecar).
  case agent
  /// By the kernel's peer credentials, mapped through the workload rules.
  case peer
  /// By a token the caller forwards (verified with the JWT keys, or by the CA in fetch mode).
  case token
  /// By the forwarded token if there is one, else by peer credentials.
  case peerOrToken = "peer-or-token"
  /// Both, and they must name the same identity.
  case peerAndToken = "peer-and-token"

  package var usesPeer: Bool { self != .agent && self != .token }
  package var usesToken: Bool { self == .token || self == .peerOrToken || self == .peerAndToken }
}
