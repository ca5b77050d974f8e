import SDSAgentCore

extension Agent {
  /// In fetch mode, the JWT-SVIDs the CA signs (`ca serve`'s `JWTSVIDService`), with its JWT
  /// bundle followed and published as the node's own; none when the Workload API is off or the
  /// agent has its own CA. An identity is asked for with the credential its certificates are.
  static func fetchedJWTSVIDs(
    _ context: AgentContext, authority: Authority, table: IdentityTable
  ) -> FetchedJWTSVIDIssuer<ContinuousClock>? {
    guard context.configuration.workloadAPI.enabled, let client = authority.remote else { return nil }
    let own = context.configuration.identity
    return FetchedJWTSVIDIssuer(
      authority: client, trustDomain: TrustDomainName(of: own), publishingTo: table.node,
      credential: { identity in
        table.lifecycle(of: identity)?.credential ?? (identity == own ? .agent : .impersonation)
      },
      clock: context.clock, now: context.now, logger: context.logger)
  }
}
