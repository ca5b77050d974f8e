import SDSAgentCore

/// Revocation lists for an operator CA that signs through an intermediate (`intermediate-crl`,
/// `ca-root-crl`), declared like every other setting.
extension AgentSettings {
  package static let caRootCRL = Setting<String>(
    "ca-root-crl", "FILE",
    help: "The operator root's CRL (PEM or DER) when --ca-cert is an intermediate, watched; verified against "
      + "the bundle and served with the intermediate's own list to Envoy's SPIFFE validator (ALL, spiffe://<td>).",
    allowed: "a CRL file, with ca-cert and ca-key", reload: .restart, parse: AgentSettings.nonEmpty,
    effective: { $0.caRootCRL ?? "" })

  package static let intermediateCRL = Setting<Bool>(
    "intermediate-crl", "",
    help: "When --ca-cert is an intermediate, serve its revocation list (ROOTCA with only_verify_leaf_cert_crl). "
      + "false for a fleet with one intermediate per node: an Envoy would refuse other nodes' leaves for want "
      + "of their intermediates' lists.",
    kind: .flag, allowed: "true or false", default: true, shownDefault: "true", reload: .restart,
    parse: { Bool($0) }, effective: { "\($0.intermediateCRL)" })

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
