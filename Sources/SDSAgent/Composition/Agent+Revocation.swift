import Foundation
import SDSAgentCore

/// Revocation by the embedded CA: its lists served in every own validation context.
extension Agent {
  /// The revocation service of the embedded CA, its lists already installed (after the trust
  /// bundle), so that the first stream gets them; `nil` with a remote CA.
  static func revocation(
    _ context: AgentContext, authority: Authority, table: IdentityTable
  ) -> RevocationService<ContinuousClock>? {
    guard let ca = authority.embedded, let record = authority.revocations else { return nil }
    let service = RevocationService(
      ca: ca, record: record, host: table, clock: context.clock, now: context.now, logger: context.logger)
    service.publish()
    return service
  }
}
