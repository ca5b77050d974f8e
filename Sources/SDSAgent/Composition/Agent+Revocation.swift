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
      ca: ca, record: record, host: table, clock: context.clock, now: context.now, logger: context.logger,
      throughIntermediates: context.configuration.intermediateCRL)
    service.publish()
    Self.warnOfRevocationGap(context, ca: ca)
    return service
  }

  static let revocationGapMessage =
    "the CA signs through an intermediate and ca-root-crl is not set: ROOTCA and plain contexts check "
    + "leaves against the intermediate's list, but the SPIFFE validator's contexts (ALL, spiffe://<td>) "
    + "carry no revocation list and accept revoked certificates"

  /// Says once, at start, what an operator intermediate without the root's list leaves unchecked.
  private static func warnOfRevocationGap(_ context: AgentContext, ca: EmbeddedCA) {
    let signsThroughIntermediate = !ca.roots.intermediates.isEmpty
    switch (signsThroughIntermediate, context.configuration.caRootCRL) {
    case (true, _) where !context.configuration.intermediateCRL:
      context.logger.warning(
        "intermediate-crl is false: the CA signs through an intermediate and no revocation list is served")
    case (true, nil):
      context.logger.warning(
        "\(Self.revocationGapMessage)")
    case (false, let path?):
      context.logger.warning(
        "ca-root-crl is not used: the CA signs leaves with its root, whose own list is served",
        metadata: ["file": "\(BoundedText(path))"])
    default:
      break
    }
  }
}
