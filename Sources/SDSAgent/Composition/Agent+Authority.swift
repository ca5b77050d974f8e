import Foundation
import Logging
import SDSAgentCore

/// Where the agent's certificates and its own trust bundle come from: an Istio-compatible CA, or
/// the embedded CA with its roots (rotatable when they are the agent's own).
extension Agent {
  /// Where certificates come from.
  enum Authority {
    case remote(IstioCAClient)
    /// The embedded CA; with a `store` when its root is the agent's own and can be rotated.
    case embedded(EmbeddedCA, rotation: RootRotation?, store: RootRotationFiles?)

    var certificateAuthority: any CertificateAuthority {
      switch self {
      case .remote(let client): return client
      case .embedded(let ca, _, _): return ca
      }
    }

    /// The remote CA's client, which is also a service (its connection).
    var remote: IstioCAClient? {
      guard case .remote(let client) = self else { return nil }
      return client
    }

    /// The embedded CA, whatever its root.
    var embedded: EmbeddedCA? {
      guard case .embedded(let ca, _, _) = self else { return nil }
      return ca
    }

    /// The embedded CA's record of what it signed and revoked.
    var revocations: (any RevocationRecord)? {
      self.embedded?.record as? any RevocationRecord
    }

    /// Why `rotate-root` cannot work here, if it cannot.
    var notRotatable: String? {
      switch self {
      case .remote:
        return "this agent fetches certificates from a remote CA; rotate that CA's root and the agent follows"
      case .embedded(_, _, nil):
        return "the CA comes from the operator's files (--ca-cert, --ca-key); replace them and reload"
      case .embedded:
        return nil
      }
    }
  }

  static func authority(for configuration: AgentConfiguration, logger: Logger) throws -> Authority {
    if let istioCA = configuration.istioCA {
      logger.info(
        "fetching certificates from an Istio-compatible CA",
        metadata: ["address": "\(istioCA.addresses.map(\.description).joined(separator: ","))"])
      return .remote(try IstioCAClient(configuration: istioCA, logger: logger))
    }
    let (roots, rotation, store) = try RootRotationFiles.roots(
      of: configuration.caSource, stateDirectory: configuration.stateDirectory, trustDomain: configuration.trustDomain)
    logger.info(
      "loaded CA",
      metadata: [
        "subject": "\(roots.signing.certificate.subject)",
        "not_after": "\(roots.signing.certificate.notValidAfter.formatted(.iso8601))",
        "source": "\(configuration.caSource == .generated ? "state-dir" : "operator-files")",
        "roots": "\(roots.trustBundle.roots.count)",
      ]
    )
    // Every leaf the embedded CA signs is recorded before it is served, so it can be revoked.
    let revocations = try RevocationStore.open(
      stateDirectory: configuration.stateDirectory, validity: configuration.crlValidity)
    return .embedded(EmbeddedCA(roots, record: revocations), rotation: rotation, store: store)
  }

  /// The operator's CA as the reloaded configuration names it (files re-read), or `nil` without
  /// operator files. Switching between generated and operator CAs needs a restart.
  static func reloadedCA(from running: AgentConfiguration, to next: AgentConfiguration) throws -> CAMaterial? {
    switch (running.caSource, next.caSource) {
    case (.generated, .generated):
      return nil
    case (.files, .files) where running.istioCA == nil:
      return try CAStore.load(next.caSource, stateDirectory: next.stateDirectory, trustDomain: next.trustDomain)
    case (.files, .files):
      return nil
    default:
      throw AgentError(
        .caFiles,
        "switching between a generated CA and the operator's CA files (ca-cert, ca-key) needs a restart")
    }
  }
}
