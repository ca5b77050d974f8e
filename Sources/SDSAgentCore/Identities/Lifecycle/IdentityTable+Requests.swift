import Logging

extension IdentityTable {
  /// Issues a new certificate for `identity` now and waits until it is served; `false` if the
  /// identity is not held.
  @discardableResult
  package func rotate(_ identity: SPIFFEID) async throws(CertificateAuthorityError) -> Bool {
    switch await self.issue(identity, retries: true, joinInFlight: false) {
    case nil: return false
    case .success: return true
    case .failure(let error): throw error
    }
  }

  /// Installs reloaded settings and waits for the re-issuance they call for.
  package func reconfigure(_ template: IdentitySettings, idleTimeout: Duration, logger: Logger) async {
    await withDiscardingTaskGroup { group in
      for identity in self.installSettings(template, idleTimeout: idleTimeout) {
        group.addTask {
          if case .failure(let error) = await self.issue(identity, retries: true, joinInFlight: false) {
            logger.error(
              "the new settings are in force, but the rotation they call for failed",
              metadata: ["identity": "\(identity)", "error": "\(error)"])
          }
        }
      }
    }
  }
}
