import SDSAgentCore

/// The services that take a new configuration on reload, each under the name that live
/// settings give it (`SettingReload.live`).
struct ReloadAppliers: Sendable {
  let registered: [SettingApplier: any Reconfigurable]

  /// Asks every applier to check `next`, in `SettingApplier`'s order, then has them apply it in
  /// the same order. The first to refuse throws before anything was applied.
  func apply(_ next: AgentConfiguration) async throws {
    var checked: [Reconfiguration] = []
    for applier in SettingApplier.allCases {
      guard let reconfigurable = self.registered[applier] else { continue }
      checked.append(try await reconfigurable.reconfiguration(to: next))
    }
    for reconfiguration in checked {
      try await reconfiguration.apply()
    }
  }
}
