import SDSAgentCore

/// The operator root's CRL for an operator CA that signs through an intermediate (`ca-root-crl`),
/// declared like every other setting.
extension AgentSettings {
  package static let caRootCRL = Setting<String>(
    "ca-root-crl", "FILE",
    help: "The operator root's CRL (PEM or DER) when --ca-cert is an intermediate, watched; verified against "
      + "the bundle and served with the intermediate's own list to Envoy's SPIFFE validator (ALL, spiffe://<td>).",
    allowed: "a CRL file, with ca-cert and ca-key", reload: .restart, parse: AgentSettings.nonEmpty,
    effective: { $0.caRootCRL ?? "" })

  /// The operator root's CRL file, only with the operator's CA files.
  static func rootCRLFile(
    _ settings: SettingsSource, caSource: AgentConfiguration.CASource
  ) throws(ConfigurationError) -> String? {
    guard let path = try settings.read(Self.caRootCRL) else { return nil }
    guard caSource.files != nil else {
      throw ConfigurationError(key: Self.caRootCRL.key, value: path, allowed: "only together with ca-cert and ca-key")
    }
    return path
  }
}
