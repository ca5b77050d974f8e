import Foundation
import SDSAgentCore

/// The services around the CA: following a remote CA and its roots file, rotating the embedded
/// CA's own root, replacing the operator's CA.
extension Agent {
  struct CAServices {
    let authority: Authority
    /// The remote CA as the agent follows it; `nil` with the embedded CA.
    let following: FollowingCA?
    /// Re-reads the remote CA's roots file (`ca-root`).
    let caRoots: CARootsWatcher?
    /// Rotates the embedded CA's root when it is the agent's own.
    let rootRotation: RootRotationSupervisor<ContinuousClock>?
    /// Replaces the operator's CA files' CA on reload.
    let operatorCA: OperatorCAReplacement?
    /// Serves the embedded CA's revocation lists and revokes.
    let revocation: RevocationService<ContinuousClock>?
    /// Replaces the operator's CA when its files change, without a reload.
    let operatorCAFiles: OperatorCAFilesWatcher?

    /// Who issues identities' certificates.
    var issuer: any CertificateAuthority { self.following ?? self.authority.certificateAuthority }
    var isRemote: Bool { self.authority.remote != nil }
  }

  static func caServices(
    _ context: AgentContext, authority: Authority, table: IdentityTable, streams: StreamRegistry,
    onDemand: OnDemandCertificates<ContinuousClock>?, jwtKeys: JWTKeyRing? = nil
  ) throws -> CAServices {
    let configuration = context.configuration
    let logger = context.logger
    let rootRotation = try Self.rootRotation(
      context, authority: authority, identities: table, streams: streams, onDemand: onDemand, jwtKeys: jwtKeys)
    let following = try authority.remote.map { client in
      try FollowingCA(
        upstream: client, table: table,
        fileRoots: try configuration.istioCA?.rootsFile.map(CARootsWatcher.roots(in:))?.roots ?? [],
        retention: { table.template.ttl }, counters: context.counters, logger: logger)
    }
    let caRoots = following.flatMap { following in
      configuration.istioCA?.rootsFile.map { path in
        CARootsWatcher(
          path: path, ca: following, reconnect: { try authority.remote?.reloadRoots() }, counters: context.counters,
          trustDomain: configuration.trustDomain, watching: context.fileWatch, clock: context.clock, logger: logger)
      }
    }
    let operatorCA: OperatorCAReplacement? =
      if case .embedded(let ca, _, nil) = authority {
        OperatorCAReplacement(ca: ca, table: table, onDemand: onDemand, now: context.now, logger: logger)
      } else { nil }
    let operatorCAFiles = operatorCA.flatMap { replacement in
      OperatorCAFilesWatcher.Files(configuration.caSource).map { files in
        OperatorCAFilesWatcher(
          files: files, replace: { try await replacement.replace(with: $0) }, counters: context.counters,
          watching: context.fileWatch, clock: context.clock, logger: logger)
      }
    }
    return CAServices(
      authority: authority, following: following, caRoots: caRoots, rootRotation: rootRotation,
      operatorCA: operatorCA, revocation: Self.revocation(context, authority: authority, table: table),
      operatorCAFiles: operatorCAFiles)
  }

  /// Serves the embedded CA's bundle to every identity and, when its root is the agent's own,
  /// the supervisor of its rotations (resuming one in progress).
  static func rootRotation(
    _ context: AgentContext, authority: Authority, identities: IdentityTable, streams: StreamRegistry,
    onDemand: OnDemandCertificates<ContinuousClock>?, jwtKeys: JWTKeyRing? = nil
  ) throws -> RootRotationSupervisor<ContinuousClock>? {
    guard case .embedded(let ca, let rotation, let store) = authority else { return nil }
    try identities.installTrustBundle(ca.trustBundle)
    guard let store else { return nil }
    if let rotation {
      context.logger.notice(
        "root rotation: resuming",
        metadata: [
          "phase": "\(rotation.phase.rawValue)", "new_root": "\(rotation.nextRootSerial)",
          "next_step_at": "\(rotation.nextDeadline(now: context.now(), acknowledged: false).formatted(.iso8601))",
        ])
    }
    return RootRotationSupervisor(
      ca: ca, host: SDSRootRotationHost(table: identities, streams: streams, onDemand: onDemand), store: store,
      resuming: rotation,
      overlap: context.configuration.rootOverlap,
      makeRoot: { [trustDomain = context.configuration.trustDomain] now in
        // A root of its own name, so that no verifier confuses it with the root it replaces.
        try CAMaterial.generateRoot(
          trustDomain: trustDomain, now: now, commonName: "sds-agent local CA \(now.formatted(.iso8601))")
      },
      clock: context.clock, now: context.now, logger: context.logger, follower: jwtKeys)
  }
}
