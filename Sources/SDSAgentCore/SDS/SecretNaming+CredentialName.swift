/// Istio's `credentialName: sds://NAME`: istio-agent's Envoy asks its credential socket for the
/// whole `sds://NAME` (and `sds://NAME-cacert` for the CA), which is the secret named `NAME`.
extension SecretNaming {
  static let credentialPrefix = "sds://"

  /// The secret an `sds://NAME` name stands for, or nil for any other name.
  static func credentialName(_ name: String) -> String? {
    guard name.hasPrefix(Self.credentialPrefix) else { return nil }
    let named = String(name.dropFirst(Self.credentialPrefix.count))
    return named.isEmpty ? nil : named
  }
}
