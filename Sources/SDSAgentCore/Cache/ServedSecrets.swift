/// What the agent serves right now, with a revision per resource. Revisions come from one
/// counter, so the highest revision among a set of resources changes exactly when one of
/// them changes.
public struct ServedSecrets: Sendable {
  /// The workload's SVID; `nil` before the first issuance or once it expired unrenewed.
  public internal(set) var svid: CertifiedKey?
  public internal(set) var svidRevision: UInt64
  public internal(set) var trustBundle: TrustBundle?
  public internal(set) var trustBundleRevision: UInt64

  public static let empty = ServedSecrets(svid: nil, svidRevision: 0, trustBundle: nil, trustBundleRevision: 0)

  public func revision(of resource: SecretResource) -> UInt64 {
    switch resource {
    case .tlsCertificate: return self.svidRevision
    case .validationContext: return self.trustBundleRevision
    }
  }

  public func isAvailable(_ resource: SecretResource) -> Bool {
    switch resource {
    case .tlsCertificate: return self.svid != nil
    case .validationContext: return self.trustBundle != nil
    }
  }
}
