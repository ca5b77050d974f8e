import Logging
import SDSAgentCore

/// How each service takes a new configuration: directly where the configuration says all it
/// needs, through a small adapter where the running configuration decides too.
extension AgentLogging: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration { self.level = next.logLevel }
  }
}

extension RootRotationSupervisor: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration { self.defaultOverlap = next.rootOverlap }
  }
}

extension FederatedBundleWatcher: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration { self.reconfigure(next.federatedBundles) }
  }
}

extension CARootsWatcher: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration { self.check(force: true) }
  }
}

extension OnDemandCertificates: Reconfigurable {
  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration { self.reconfigure(idleTimeout: next.nodeAgent.limits.idleTimeout) }
  }
}

/// File secrets; whether callers are checked follows the running identification mode (a change
/// of mode needs a restart).
struct FileSecretsReload: Reconfigurable {
  let files: FileSecretWatcher
  let running: AgentConfiguration

  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration {
      self.files.reconfigure(
        next.fileSecrets,
        policy: OnTheFlyFilePolicy(
          directories: next.fileSecretDirectories, callers: next.fileSecretCallers,
          checksCallers: self.running.nodeAgent.identification != .agent),
        keyMaterial: next.keyMaterial)
    }
  }
}

/// The operator's CA files re-read; new files that cannot be used, or a switch between a
/// generated CA and the operator's, refuse the whole reload.
struct OperatorCAReload: Reconfigurable {
  let replacement: OperatorCAReplacement?
  let running: AgentConfiguration
  /// Follows the files the reload names.
  let watcher: OperatorCAFilesWatcher?

  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    guard let material = try Agent.reloadedCA(from: self.running, to: next) else { return .none }
    return Reconfiguration {
      try await self.replacement?.replace(with: material)
      if let files = OperatorCAFilesWatcher.Files(next.caSource) { self.watcher?.reconfigure(files) }
    }
  }
}

/// Rules, token keys and limits change live; the identification mode needs a restart, because
/// the transport reads peer credentials only in the modes that use them.
struct AdmissionReload: Reconfigurable {
  let admission: CallerAdmission
  let running: AgentConfiguration
  let remoteCA: Bool

  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    let node = NodeAgentConfiguration(
      identification: self.running.nodeAgent.identification, rules: next.nodeAgent.rules,
      jwtKeysFile: next.nodeAgent.jwtKeysFile, limits: next.nodeAgent.limits)
    try node.validate(remoteCA: self.remoteCA)
    let attestor = try await Agent.attestor(node, of: next, remoteCA: self.remoteCA)
    return Reconfiguration { self.admission.update(attestor: attestor, limits: next.nodeAgent.limits) }
  }
}

/// Every identity's issuing settings and idle timeout; waits for the re-issuance they call for.
struct IdentitiesReload: Reconfigurable {
  let identities: IdentityTable
  let logger: Logger

  func reconfiguration(to next: AgentConfiguration) async throws -> Reconfiguration {
    Reconfiguration {
      await self.identities.reconfigure(
        Agent.identitySettings(next), idleTimeout: next.nodeAgent.limits.idleTimeout, logger: self.logger)
    }
  }
}
