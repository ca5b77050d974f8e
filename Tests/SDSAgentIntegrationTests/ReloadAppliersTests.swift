import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// Reload follows the declarations: every setting declared live names who applies it, the built
/// agent registers every applier named, and a refusal applies nothing.
@Suite(.timeLimit(.minutes(1))) struct ReloadAppliersTests {
  @Test func everySettingDeclaredLiveNamesAnApplierTheBuiltAgentRegisters() async throws {
    let registered = try await RunningAgent.with { $0.agent.registeredAppliers }
    for setting in AgentSettings.all {
      if setting.reload.isLive {
        #expect(!setting.reload.appliers.isEmpty, "\(setting.key) is declared live but names nobody to apply it")
      }
      let missing = setting.reload.appliers.subtracting(registered)
      #expect(missing.isEmpty, "\(setting.key) names \(missing), which the agent does not register")
    }
    // Only the CA roots file is re-read with no setting changed (its path needs a restart).
    let named = AgentSettings.all.reduce(into: Set<SettingApplier>()) { $0.formUnion($1.reload.appliers) }
    #expect(Set(SettingApplier.allCases).subtracting(named) == [.caRoots])
  }

  @Test func theWorkloadIdleTimeoutReachesIdentitiesAndOnDemandCertificates() {
    #expect(AgentSettings.workloadIdleTimeout.declaration.reload.appliers == [.identities, .onDemand])
  }

  @Test func aReloadOneApplierRefusesAppliesNothing() async throws {
    let configuration = try RunningAgent.configuration()
    try await RunningAgent.with(configuration) { running in
      var next = AgentConfigurationBuilder(configuration)
      next.certificateTTL = .seconds(60)
      next.caSource = .files(certificate: running.directory + "/ca.pem", key: running.directory + "/ca.key", chain: nil)
      await #expect(throws: (any Error).self) { try await running.agent.reload(try next.build()) }
      #expect(running.agent.identities.template.ttl == .seconds(3600), "applied before the operator CA refused")
      next.caSource = .generated
      try await running.agent.reload(try next.build())
      #expect(running.agent.identities.template.ttl == .seconds(60))
    }
  }
}
