/// Why Envoy rejected a response, in a small closed set fit for a metric label; Envoy's own
/// message goes to the log (truncated) and to `/debug/streams`.
package enum NackReason: String, Sendable, CaseIterable {
  case privateKey = "private_key"
  case certificateChain = "certificate_chain"
  case trustedCA = "trusted_ca"
  case other

  package init(envoyMessage message: String) {
    let text = message.prefix(Self.scannedLength).lowercased()
    if text.contains("private key") || text.contains("private_key") {
      self = .privateKey
    } else if text.contains("certificate chain") || text.contains("certificate_chain") {
      self = .certificateChain
    } else if text.contains("trusted") || text.contains("ca cert") {
      self = .trustedCA
    } else {
      self = .other
    }
  }

  /// How much of Envoy's message is looked at.
  static let scannedLength = 1024

  /// How much of Envoy's message a log line or `/debug/streams` keeps.
  package static let keptLength = 512
}
